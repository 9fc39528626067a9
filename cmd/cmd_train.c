/* cmd_train.c - `serendip train`: corpora, the base, novelty and alignment models (and the
 * single-model baseline) and the item retrieval model (the work is in src/plan/models.c; the flags
 * and their checks are the train stage's table in stage.h, shared with serendip_run). */
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
    sd_train_args a;
    sd_train_args_init(&a);
    const char *ws = NULL;
    int json = 0, mpi = 0;
    fl_spec opts[SD_STAGE_OPTS];
    const fl_spec extra[] = {
        {"json", FL_BOOL, &json, "print the report as JSON"},
        {"mpi", FL_BOOL, &mpi, "data-parallel on MPI (under mpirun/srun): ranks split every batch; rank 0 writes"},
        {0},
    };
    int rc = cmd_stage_parse(&sd_stage_train, &ws, "workspace folder (needs dataset, taxonomy, journeys)", opts, sd_train_opts(&a, opts), extra, argc, argv);
    if (rc) return rc == FL_HELP ? 0 : rc;
    if (!a.o.base && (rc = cmd_check_memory(argv[0], cmd_train_bytes(&a.o.cfg, a.o.vocab, a.o.batch), "--dim, --layers, --hidden, --vocab, --seq-len and --batch"))) return rc;
    sd_err err = {0};
    if (sd_train_check(&a, "--", &err)) return cmd_stage_fail(argv[0], &err);
    md_opts o = a.o;
    if ((rc = cmd_mpi_start(argv[0], mpi))) return rc;
    md_report r;
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
