/* models_mpi.c - `train --mpi`: the train stage with its language models trained data-parallel
 * over MPI ranks (see md_train_mpi in models.h).
 *
 * Why a scratch workspace: md_train writes corpora, a manifest and models into its workspace as it
 * goes, and reads some back. Rather than threading "am I rank 0?" through every write, the other
 * ranks run the same deterministic stage on a private workspace whose inputs are links to ws's
 * files; rank 0 alone writes into ws. Their only contact is the gradient sum in lm_train.c. */
#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "serendip/models.h"
#include "serendip/mpi.h"

/* Links every regular file of ws into dir (an existing empty folder). */
static int link_inputs(const char *ws, const char *dir, sd_err *err) {
    char abs[PATH_MAX];
    if (!realpath(ws, abs)) return sd_fail(err, SD_ERR_IO, "%s: cannot resolve the workspace path", ws);
    DIR *d = opendir(abs);
    if (!d) return sd_fail(err, SD_ERR_IO, "%s: cannot read the workspace folder", abs);
    int rc = SD_OK;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        char *src = sd_path_join(abs, e->d_name), *dst = sd_path_join(dir, e->d_name);
        struct stat st;
        if (stat(src, &st) == 0 && S_ISREG(st.st_mode) && symlink(src, dst))
            rc = sd_fail(err, SD_ERR_IO, "%s: cannot link %s into the scratch workspace", dst, src);
        free(src);
        free(dst);
    }
    closedir(d);
    return rc;
}

int md_train_mpi(const char *ws, const md_opts *o, md_report *r, sd_err *err) {
    md_opts x = *o;
    x.mpi = 1;
    if (sd_mpi_rank() == 0) return md_train(ws, &x, r, err);
    const char *tmp = getenv("TMPDIR");
    char *dir = sd_asprintf("%s/serendip-train-rank%d.XXXXXX", tmp && *tmp ? tmp : "/tmp", sd_mpi_rank());
    int rc;
    if (!mkdtemp(dir)) rc = sd_fail(err, SD_ERR_IO, "%s: cannot create the scratch workspace", dir);
    else {
        rc = link_inputs(ws, dir, err);
        x.no_retrieval = 1; /* rank 0's alone: it is not data-parallel */
        if (!rc) rc = md_train(dir, &x, r, err);
        sd_remove_tree(dir, NULL);
    }
    free(dir);
    return rc;
}
