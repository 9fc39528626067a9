/* cmd_train.c - `serendip train`: corpora, the base, novelty and alignment models (and the
 * single-model baseline) and the item retrieval model (the work is in src/plan/models.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "serendip/models.h"
#include "serendip/mpi.h"
#include "serendip/plan.h"

static void print_quality(const md_align_quality *q) {
    printf("alignment model on %lld held-out tuples: Spearman %.3f (vs pos_rate), %.3f (vs label), AUC %.3f\n",
           (long long)q->align_heldout, q->align_spearman, q->align_spearman_label, q->align_auc);
    printf("  vs pos_rate's noise ceiling %.3f (split-half Spearman %.3f on %lld tuples)\n", q->noise_ceiling,
           q->split_half, (long long)q->split_tuples);
    if (q->truth_tuples > 0)
        printf("  vs the truth (mean true like-probability of the tuple's users): Spearman %.3f; the pooled rate itself: %.3f (%lld tuples)\n",
               q->spearman_truth, q->rate_spearman_truth, (long long)q->truth_tuples);
    if (q->sparse_tuples > 0)
        printf("  on %lld sparse held-out tuples (too few users to label) vs the truth: model %.3f, their pooled rate %.3f\n",
               (long long)q->sparse_tuples, q->spearman_truth_sparse, q->rate_spearman_truth_sparse);
}

int cmd_train(int argc, char **argv) {
    const char *ws = NULL;
    md_opts o;
    md_opts_default(&o);
    int seed = (int)o.seed, json = 0, mpi = 0;
    float label_shrink = (float)o.corpus.label_shrink;
    fl_spec specs[] = {
        {"ws", FL_STR, &ws, "workspace folder (needs dataset, taxonomy, journeys)"},
        {"base", FL_STR, &o.base, "start from this GGUF base model (e.g. a pretrained Llama) instead of training one"},
        {"vocab", FL_INT, &o.vocab, "BPE vocabulary size"},
        {"dim", FL_INT, &o.cfg.dim, "model width"},
        {"layers", FL_INT, &o.cfg.n_layers, "transformer blocks"},
        {"heads", FL_INT, &o.cfg.n_heads, "attention heads"},
        {"kv-heads", FL_INT, &o.cfg.n_kv_heads, "key/value heads (grouped-query attention)"},
        {"hidden", FL_INT, &o.cfg.hidden_dim, "feed-forward width"},
        {"seq-len", FL_INT, &o.cfg.seq_len, "context length in tokens"},
        {"pretrain-steps", FL_INT, &o.pretrain_steps, "optimizer steps of base pretraining"},
        {"novelty-steps", FL_INT, &o.novelty_steps, "steps of the novelty fine-tune (and the single baseline)"},
        {"align-steps", FL_INT, &o.align_steps, "steps of the alignment fine-tune"},
        {"batch", FL_INT, &o.batch, "rows per step"},
        {"lr", FL_FLOAT, &o.lr, "peak learning rate of pretraining"},
        {"sft-lr", FL_FLOAT, &o.sft_lr, "peak learning rate of the fine-tunes"},
        {"lora", FL_INT, &o.lora_rank, "LoRA rank of the fine-tunes (0 = full fine-tune)"},
        {"no-retrieval", FL_BOOL, &o.no_retrieval, "skip the item-level retrieval model (its training grows with the log)"},
        {"baseline", FL_BOOL, &o.baseline, "also train the single model fine-tuned on high-feedback tuples"},
        {"novelty-examples", FL_INT, &o.corpus.novelty_examples, "size of the diversified novelty set"},
        {"per-target-cap", FL_INT, &o.corpus.per_target_cap, "max novelty examples per target cluster (0 = automatic)"},
        {"min-users", FL_INT, &o.corpus.min_users, "held-out alignment tuples backed by fewer users are judged on the probe only"},
        {"train-min-users", FL_INT, &o.corpus.train_min_users, "alignment training tuples backed by fewer users are dropped"},
        {"label-shrink", FL_FLOAT, &label_shrink, "alignment labels: percentile of the rate shrunk with this many pseudo-exposures (0 = raw)"},
        {"pairwise", FL_BOOL, &o.corpus.pairwise, "also write the pairwise alignment corpus and train the pairwise model on it\n"
                                                   "(models/align_pairwise.gguf, as many steps as the alignment model)"},
        {"pairwise-examples", FL_INT, &o.corpus.pairwise_examples, "pairs in the pairwise corpus"},
        {"seed", FL_INT, &seed, "random seed"},
        {"json", FL_BOOL, &json, "print the report as JSON"},
        {"mpi", FL_BOOL, &mpi, "data-parallel on MPI (under mpirun/srun): ranks split every batch; rank 0 writes"},
        {0},
    };
    int rc = fl_parse("train --ws DIR [flags]",
                      "Builds the corpora, pretrains the base model on the catalogue's language, and fine-tunes the\n"
                      "novelty model and the alignment model from it (ws/models/*.gguf, ws/models/train.json).",
                      specs, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if ((rc = cmd_need_ws(argv[0], ws))) return rc;
    if (!o.base && (rc = cmd_check_memory(argv[0], cmd_train_bytes(&o.cfg, o.vocab, o.batch), "--dim, --layers, --hidden, --vocab, --seq-len and --batch"))) return rc;
    o.seed = (uint64_t)seed;
    o.corpus.seed = (uint64_t)seed;
    o.corpus.label_shrink = label_shrink;
    if ((rc = cmd_mpi_start(argv[0], mpi))) return rc;
    md_report r;
    sd_err err = {0};
    if ((mpi ? md_train_mpi(sd_mpi_test_ws(ws), &o, &r, &err) : md_train(ws, &o, &r, &err))) return cmd_fail(&err);
    if (cmd_mpi_quiet()) return 0;
    char *path = sd_asprintf("%s/%s/%s", ws, MD_DIR, MD_REPORT);
    if (json) {
        char *text;
        if (!sd_read_file(path, &text, NULL, &err)) {
            fputs(text, stdout);
            fputc('\n', stdout);
            free(text);
        }
    } else {
        printf("models: %lld parameters each, in %s/%s/\n", (long long)r.n_params, ws, MD_DIR);
        printf("pretrain  loss %.3f  %.1fs  %.0f tokens/s\n", r.pretrain_loss, r.pretrain_s, r.tokens_per_s);
        printf("novelty   loss %.3f  %.1fs  (%lld examples)\n", r.novelty_loss, r.novelty_s, (long long)r.corpus.novelty_examples);
        printf("align     loss %.3f  %.1fs  (%lld tuples)\n", r.align_loss, r.align_s, (long long)r.corpus.align_train);
        if (o.baseline) printf("single    loss %.3f  %.1fs\n", r.single_loss, r.single_s);
        if (o.corpus.pairwise) {
            const md_pair_quality *pq = &r.pair_quality;
            printf("pairwise  loss %.3f  %.1fs  (%lld pairs)\n", r.pairwise_loss, r.pairwise_s, (long long)r.corpus.pairwise_examples);
            printf("  held-out pairs ordered as their labels: pointwise %.3f, pairwise %.3f (%lld pairs); as the truth: "
                   "pointwise %.3f, pairwise %.3f (%lld pairs)\n",
                   pq->acc_point, pq->acc_pair, (long long)pq->pairs, pq->truth_acc_point, pq->truth_acc_pair,
                   (long long)pq->truth_pairs);
        }
        if (o.no_retrieval) printf("retrieval model (item level): skipped (--no-retrieval)\n");
        else printf("retrieval model (item level) %.1fs: %s/retrieval.bin\n", r.retrieval_s, ws);
        print_quality(&r.quality);
        printf("report: %s\n", path);
    }
    free(path);
    return 0;
}
