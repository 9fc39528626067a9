/* refresh.c - the continual refresh of the A/B experiment: the experiment's events become a new
 * dataset version, journeys and collective feedback are recomputed, the alignment model is
 * fine-tuned further and the table re-planned (abtest.h, ab_refresh; docs/abtest.md).
 *
 * Nothing here is new machinery: it chains the stages' own library calls (ds_builder, jr_run,
 * cp_build_all, the LM trainer of src/lm/, pl_plan) on a fresh folder. What is written by hand is
 * the order and the atomicity: a version is built aside and renamed into place only when whole. */
#include "serendip/abtest.h"
#include "serendip/corpus.h"
#include "serendip/gguf.h"
#include "serendip/journeys.h"
#include "serendip/lm_train.h"
#include "serendip/models.h"
#include "serendip/plan.h"
#include "serendip/sft.h"
#include "serendip/table.h"
#include "serendip/taxonomy.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Fault injection (AB_KILL_ENV): dies by SIGKILL when the variable names this stage (and this
 * refresh, when it says which). A killed process is the harshest failure: nothing is cleaned up. */
static void maybe_kill(const char *stage, int r) {
    const char *v = getenv(AB_KILL_ENV);
    if (!v || !*v) return;
    size_t n = strlen(stage);
    if (strncmp(v, stage, n) != 0) return;
    if (v[n] == ':' && atoi(v + n + 1) != r) return;
    if (v[n] != 0 && v[n] != ':') return;
    sd_log("abtest: %s=%s: killing myself during refresh %d", AB_KILL_ENV, v, r);
    fflush(stderr);
    raise(SIGKILL);
}

/* dst is a hard link to src when the file system allows it, else a copy (atomic either way). */
static int link_or_copy(const char *src, const char *dst, sd_err *err) {
    unlink(dst);
    if (link(src, dst) == 0) return SD_OK;
    char *data;
    size_t len;
    int rc = sd_read_file(src, &data, &len, err);
    if (rc) return rc;
    rc = sd_write_file_atomic(dst, data, len, err);
    free(data);
    return rc;
}

/* The new dataset version: base's catalogue and events, then the experiment's. */
static int write_dataset(const char *dir, const ds_dataset *base, const sd_vec *logs, int64_t n_users, int64_t *n_events,
                         int64_t *n_exp, sd_err *err) {
    ds_builder *b = ds_builder_new();
    int rc = SD_OK;
    for (int64_t i = 0; i < base->n_items && !rc; i++)
        if (base->item_meta[i]) rc = ds_builder_add_item(b, base->item_ids[i], ds_item_title(base, i), ds_item_tags(base, i), err);
    if (rc) {
        ds_builder_free(b);
        return rc;
    }
    for (int64_t e = 0; e < base->n_events; e++) {
        const ds_event *x = &base->events[e];
        ds_builder_add_event(b, base->user_ids[x->user], base->item_ids[x->item], x->ts, x->rating, x->watch);
    }
    int64_t ne = 0;
    for (int64_t u = 0; u < n_users; u++) {
        const ab_logged *l = logs[u].data;
        for (size_t i = 0; i < logs[u].len; i++, ne++) ds_builder_add_event(b, u + 1, l[i].item, l[i].ts, l[i].rating, l[i].watch);
    }
    ds_dataset d;
    if ((rc = ds_builder_finish(b, &d, err))) return rc;
    /* the retrieval model and the taxonomy index items densely: the version must keep every index */
    int same = d.n_items == base->n_items && d.n_users == base->n_users;
    for (int64_t i = 0; same && i < d.n_items; i++) same = d.item_ids[i] == base->item_ids[i];
    for (int64_t u = 0; same && u < d.n_users; u++) same = d.user_ids[u] == base->user_ids[u];
    if (!same) {
        ds_free(&d);
        return sd_fail(err, SD_ERR_DATA,
                       "abtest refresh: the new dataset version would renumber users or items (%lld users, %lld items "
                       "vs %lld, %lld): the experiment's users must be the dataset's",
                       (long long)d.n_users, (long long)d.n_items, (long long)base->n_users, (long long)base->n_items);
    }
    char *p = sd_path_join(dir, DS_FILE);
    rc = ds_save(&d, p, err);
    *n_events = d.n_events;
    *n_exp = ne;
    /* every event is train: the refreshed journeys and feedback see the whole log */
    ds_split s;
    memset(&s, 0, sizeof s);
    s.train_end = s.valid_end = d.ts_max + 1;
    if (!rc) rc = sd_hash_file(p, &s.dataset_hash, err);
    free(p);
    if (!rc) {
        p = sd_path_join(dir, DS_SPLIT_FILE);
        rc = ds_split_save(&s, p, err);
        free(p);
    }
    ds_free(&d);
    return rc;
}

/* prev's alignment model fine-tuned further on dir's corpus/align.jsonl into dir/models/align.gguf. */
static int finetune_align(const char *prev_dir, const char *dir, const ab_opts *o, int r, sd_err *err) {
    char *src = sd_asprintf("%s/%s/%s", prev_dir, MD_DIR, MD_ALIGN), *data = sd_asprintf("%s/%s/%s", dir, CP_DIR, CP_ALIGN);
    char *dst = sd_asprintf("%s/%s/%s", dir, MD_DIR, MD_ALIGN);
    lm_model m;
    lm_tokenizer *tok = NULL;
    lm_examples ex;
    lm_examples_init(&ex);
    lm_trainer *tr = NULL;
    lm_batcher bt;
    int have_m = 0, have_b = 0;
    int rc = lm_gguf_load(src, &m, &tok, err);
    if (rc) goto done;
    have_m = 1;
    size_t n = 0, n_cut = 0;
    int longest = 0;
    if ((rc = lm_sft_load_jsonl(tok, data, (size_t)m.cfg.seq_len + 1, &ex, &n, &longest, &n_cut, err))) goto done;
    if (o->refresh_steps == 0) { /* no further fine-tune: the previous model as it was (an ablation) */
        char *mdir = sd_path_join(dir, MD_DIR);
        rc = sd_mkdir_p(mdir, err);
        free(mdir);
        if (!rc) rc = link_or_copy(src, dst, err);
        goto done;
    }
    lm_train_opts to;
    lm_train_opts_default(&to);
    to.steps = o->refresh_steps;
    to.lr = o->refresh_lr;
    to.min_lr = o->refresh_lr / 10;
    to.warmup = o->refresh_steps / 10 + 1;
    to.batch = 32;
    to.seq_len = longest - 1 < m.cfg.seq_len ? longest - 1 : m.cfg.seq_len;
    if (to.seq_len < 1) to.seq_len = 1;
    to.seed = o->seed * 1000003u + (uint64_t)r;
    to.lora_rank = o->lora_rank;
    to.weight_decay = 0; /* as the train stage's fine-tunes: no pull toward 0 away from the model */
    if ((rc = lm_trainer_new(&tr, &m, &to, err))) goto done;
    int32_t pad = tok_pad(tok) >= 0 ? tok_pad(tok) : tok_eos(tok) >= 0 ? tok_eos(tok) : 0;
    if ((rc = lm_batcher_init(&bt, &ex, to.batch, to.seq_len, pad, to.seed, err))) goto done;
    have_b = 1;
    sd_log("abtest refresh %d: fine-tuning the alignment model %d more steps on %zu tuples%s", r, to.steps, n,
           o->lora_rank ? " (LoRA)" : "");
    float loss = 0;
    double tps = 0;
    if ((rc = lm_train_run(tr, &bt, "align refresh", NULL, NULL, &loss, &tps, err))) goto done;
    maybe_kill("finetune", r);
    if (tr->lora) lm_lora_merge(tr->lora, &m);
    char *mdir = sd_path_join(dir, MD_DIR);
    rc = sd_mkdir_p(mdir, err);
    free(mdir);
    if (!rc) rc = lm_gguf_save(dst, &m, tok, "align", err);
done:
    if (have_b) lm_batcher_free(&bt);
    if (tr) lm_trainer_free(tr);
    lm_examples_free(&ex);
    if (have_m) lm_model_free(&m);
    if (tok) tok_free(tok);
    free(src), free(data), free(dst);
    return rc;
}

int ab_refresh(const char *ws, const char *prev_dir, int r, int day, const ds_dataset *base, const sd_vec *logs,
               int64_t n_users, const ab_opts *o, ab_refresh_info *info, sd_err *err) {
    double t0 = sd_now(), t;
    memset(info, 0, sizeof *info);
    info->day = day;
    char *root = sd_path_join(ws, AB_DIR);
    char *final = sd_asprintf("%s/v%d", root, r), *dir = sd_asprintf("%s.new.%ld", final, (long)getpid());
    snprintf(info->dir, sizeof info->dir, "%s", final);
    sd_remove_stale(final, ".new."); /* what a killed refresh left */
    int rc = sd_mkdir_p(root, err);
    if (!rc) {
        sd_remove_tree(dir, NULL);
        rc = sd_mkdir_p(dir, err);
    }
    if (rc) goto done;
    /* 1. the new dataset version */
    t = sd_now();
    if ((rc = write_dataset(dir, base, logs, n_users, &info->events, &info->experiment_events, err))) goto done;
    info->dataset_s = sd_now() - t;
    maybe_kill("dataset", r);
    /* 2. journeys and collective feedback on it, over the workspace's taxonomy */
    t = sd_now();
    char *a = sd_path_join(ws, TX_FILE), *b = sd_path_join(dir, TX_FILE);
    rc = link_or_copy(a, b, err);
    free(a), free(b);
    if (rc) goto done;
    ds_positive_rule rule;
    if ((rc = jr_workspace_rule(ws, &rule, NULL, err))) goto done;
    int k = JR_K_DEFAULT;
    {
        jr_journeys j0;
        char *jp = sd_path_join(ws, JR_FILE);
        rc = jr_load(&j0, jp, err);
        free(jp);
        if (rc) goto done;
        k = j0.k;
        jr_free(&j0);
    }
    if ((rc = jr_run(dir, k, &rule, NULL, err))) goto done;
    info->journeys_s = sd_now() - t;
    maybe_kill("journeys", r);
    /* 3. the corpora, with the workspace's corpus options */
    t = sd_now();
    cp_opts co;
    cp_stats cs;
    if ((rc = cp_opts_load(ws, &co, err))) goto done;
    if ((rc = cp_build_all(dir, &co, &cs, err))) goto done;
    info->corpus_s = sd_now() - t;
    maybe_kill("corpus", r);
    /* 4. the alignment model, fine-tuned further; the novelty model as it was */
    t = sd_now();
    if ((rc = finetune_align(prev_dir, dir, o, r, err))) goto done;
    a = sd_asprintf("%s/%s/%s", ws, MD_DIR, MD_NOVELTY), b = sd_asprintf("%s/%s/%s", dir, MD_DIR, MD_NOVELTY);
    rc = link_or_copy(a, b, err);
    free(a), free(b);
    if (rc) goto done;
    info->finetune_s = sd_now() - t;
    /* 5. the re-plan */
    t = sd_now();
    pl_opts po;
    pl_opts_default(&po);
    po.n_sweep[0] = o->refresh_n;
    po.n_count = 1;
    po.seed = o->seed * 7919u + (uint64_t)r;
    pl_report pr;
    if ((rc = pl_plan(dir, &po, &pr, err))) goto done;
    info->plan_s = sd_now() - t;
    info->compliance = pr.count ? pr.r[0].compliance : 0;
    maybe_kill("plan", r);
    /* 6. into place */
    rc = sd_replace_dir(dir, final, err);
    maybe_kill("rename", r);
done:
    if (rc) {
        sd_err_prefix(err, "abtest refresh %d (after day %d)", r, day);
        sd_remove_tree(dir, NULL);
    }
    info->seconds = sd_now() - t0;
    free(root), free(final), free(dir);
    return rc;
}
