// bench_kmeans_faiss.cpp - serendip k-means (km_fit) against FAISS (faiss::Clustering) on the same
// points, same k, same iterations, same thread count: median time and final inertia side by side.
//
// Run: bash bench/kmeans.sh [--ws WORKSPACE] [--runs 5] [--threads T]
//   (builds build/libserendip.a, compiles this file with g++ against Debian's libfaiss-dev).
// Data sets: (a) a generated 100,000 x 64 Gaussian mixture (200 centres), k = 100; (b) with --ws,
// the item embeddings that `serendip cluster` computes from that workspace's train window, k = 100.
// Both methods run 25 assignment + update iterations (serendip adds one final assignment). FAISS
// is given every point (max_points_per_centroid raised; its default would subsample to 256 per
// centroid). Inertia is recomputed for both sets of final centroids by the same exact function
// (nearest centroid, double accumulation), so the numbers are comparable.
#include <faiss/Clustering.h>
#include <faiss/IndexFlat.h>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "serendip/base.h"
#include "serendip/dataset.h"
#include "serendip/embed.h"
#include "serendip/kmeans.h"
void openblas_set_num_threads(int);
}

static std::string cpu_model() {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    std::string m = "unknown";
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            const char *c = strchr(line, ':');
            m = c ? c + 2 : line;
            m.erase(m.find_last_not_of("\n") + 1);
            break;
        }
    if (f) fclose(f);
    return m;
}

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double exact_inertia(const float *x, int64_t n, int d, const float *c, int k) {
    std::vector<int32_t> a(n);
    km_assign_blas(x, n, d, c, k, a.data(), NULL);
    return km_inertia(x, n, d, c, a.data());
}

static void run(const char *name, const float *x, int64_t n, int d, int k, int iters, int runs) {
    std::vector<double> ts, tf, is, inf;
    for (int r = 0; r < runs; r++) {
        km_config cfg;
        cfg.k = k, cfg.max_iter = iters, cfg.tol = 0, cfg.seed = 1000 + r, cfg.pp_trials = 0;
        km_result res;
        sd_err err;
        double t0 = sd_now();
        if (km_fit(x, n, d, &cfg, &res, &err)) {
            fprintf(stderr, "km_fit: %s\n", err.msg);
            exit(1);
        }
        ts.push_back(sd_now() - t0);
        is.push_back(exact_inertia(x, n, d, res.centroids, k));
        km_result_free(&res);

        faiss::ClusteringParameters cp;
        cp.niter = iters;
        cp.seed = 1000 + r;
        cp.verbose = false;
        cp.max_points_per_centroid = (int)(n / k + 1);
        faiss::Clustering clus(d, k, cp);
        faiss::IndexFlatL2 index(d);
        t0 = sd_now();
        clus.train(n, x, index);
        tf.push_back(sd_now() - t0);
        inf.push_back(exact_inertia(x, n, d, clus.centroids.data(), k));
    }
    double ms = median(ts), mf = median(tf), ims = median(is), imf = median(inf);
    printf("%-34s %8lld %4d %4d %5d | %9.3f %9.3f %7.2fx | %13.6g %13.6g %+8.3f%%\n", name, (long long)n, d, k, iters, ms, mf, ms / mf,
           ims, imf, 100.0 * (ims - imf) / imf);
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *ws = NULL;
    int runs = 5, threads = sd_num_threads();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ws") && i + 1 < argc) ws = argv[++i];
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_kmeans_faiss [--ws DIR] [--runs N] [--threads T]\n");
            return 2;
        }
    }
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    printf("k-means: serendip km_fit vs FAISS faiss::Clustering (IndexFlatL2)\n");
    printf("CPU: %s; threads: %d (OpenMP and OpenBLAS); median of %d runs, seeds differ per run\n\n", cpu_model().c_str(), threads, runs);
    printf("%-34s %8s %4s %4s %5s | %9s %9s %8s | %13s %13s %9s\n", "data", "n", "d", "k", "iters", "ours s", "faiss s", "ratio",
           "ours inertia", "faiss inertia", "diff");

    /* (a) generated mixture */
    {
        int64_t n = 100000;
        int d = 64, centres = 200;
        sd_rng rng;
        sd_rng_seed(&rng, 7);
        std::vector<float> mu((size_t)centres * d), x((size_t)n * d);
        for (auto &v : mu) v = (float)(3.0 * sd_rng_normal(&rng));
        for (int64_t i = 0; i < n; i++) {
            int c = (int)sd_rng_below(&rng, centres);
            for (int t = 0; t < d; t++) x[i * d + t] = mu[(size_t)c * d + t] + (float)sd_rng_normal(&rng);
        }
        run("gaussian mixture (200 centres)", x.data(), n, d, 100, 25, runs);
    }

    /* (b) workspace item embeddings */
    if (ws) {
        sd_err err;
        ds_dataset d;
        ds_split s;
        char *dp = sd_path_join(ws, DS_FILE), *sp = sd_path_join(ws, DS_SPLIT_FILE);
        if (ds_load(&d, dp, &err) || ds_split_load(&s, sp, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        std::vector<int64_t> off(d.n_users + 1);
        std::vector<int32_t> seq;
        for (int64_t u = 0; u < d.n_users; u++) {
            off[u] = (int64_t)seq.size();
            for (int64_t e = d.user_off[u]; e < d.user_off[u + 1]; e++)
                if (ds_split_of(&s, d.events[e].ts) == DS_TRAIN) seq.push_back(d.events[e].item);
        }
        off[d.n_users] = (int64_t)seq.size();
        em_config ec;
        ec.dim = 64, ec.window = 50, ec.cds_alpha = 0.75f, ec.oversample = 16, ec.power_iters = 4, ec.seed = 1;
        em_embedding emb;
        if (em_embed(d.n_items, d.n_users, off.data(), seq.data(), &ec, &emb, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        std::vector<float> x;
        for (int64_t i = 0; i < d.n_items; i++)
            if (emb.has[i]) x.insert(x.end(), emb.vec + i * emb.dim, emb.vec + (i + 1) * emb.dim);
        std::string name = std::string("embeddings ") + ws;
        if (name.size() > 34) name = "..." + name.substr(name.size() - 31);
        run(name.c_str(), x.data(), emb.n_embedded, emb.dim, 100, 25, runs);
        em_embedding_free(&emb);
        ds_free(&d);
        free(dp), free(sp);
    }
    printf("\nratio = ours / faiss time (< 1: faster); diff = (ours - faiss) / faiss inertia (< 0: lower cost)\n");
    return 0;
}
