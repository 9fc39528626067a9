/* trie.c - the token trie of constrained decoding.
 *
 * Allowed strings are given as token sequences (their canonical tokenization) + one end token.
 * The trie is built with pointer-free temporary child lists and then flattened in breadth-first
 * order: node 0 is the root, the children of a node are contiguous and sorted by token, and every
 * node of depth d comes before every node of depth d+1 (lm_trie_logprobs walks it level by level).
 * A node reached by the end token is a leaf that names its string. Hand-written: a few dozen lines,
 * and no Debian library offers a token trie. */
#include "serendip/lm_infer.h"

#include <stdlib.h>
#include <string.h>

struct lm_trie {
    int n_nodes, n_strings, max_depth;
    int32_t end_id;
    int *child_start; /* (n_nodes) first edge of the node */
    int *child_count; /* (n_nodes) */
    int32_t *edge_tok; /* (n_nodes) token of edge e (edges grouped by parent node) */
    int *edge_child;  /* (n_nodes - 1) node the edge leads to */
    int *depth;       /* (n_nodes) tokens from the root */
    int *parent;      /* (n_nodes) -1 for the root */
    int32_t *token;   /* (n_nodes) token of the edge into the node, -1 for the root */
    int *leaf;        /* (n_nodes) string index for an end-token leaf, else -1 */
    int *only;        /* (n_nodes) the one string below the node when exactly one is, else -1 */
};

/* Temporary build node: children as a singly linked sibling list. */
typedef struct {
    int32_t tok;
    int first, next, leaf, depth;
} bnode;

static int bchild(sd_vec *v, int node, int32_t tok) {
    bnode *b = v->data;
    for (int c = b[node].first; c >= 0; c = b[c].next)
        if (b[c].tok == tok) return c;
    bnode *n = sd_vec_push(v);
    b = v->data; /* push may move the block */
    int id = (int)v->len - 1;
    n->tok = tok;
    n->leaf = -1;
    n->depth = b[node].depth + 1;
    /* keep siblings sorted by token */
    int *link = &b[node].first;
    while (*link >= 0 && b[*link].tok < tok) link = &b[*link].next;
    n->next = *link;
    n->first = -1;
    *link = id;
    return id;
}

lm_trie *lm_trie_new(const int32_t *const *seqs, const int *lens, int n, int32_t end_id, int32_t vocab,
                     sd_err *err) {
    if (n <= 0) {
        sd_fail(err, SD_ERR_USAGE, "token trie: no allowed strings");
        return NULL;
    }
    if (end_id < 0 || end_id >= vocab) {
        sd_fail(err, SD_ERR_USAGE, "token trie: end token %d outside the vocabulary [0, %d)", end_id, vocab);
        return NULL;
    }
    sd_vec v;
    sd_vec_init(&v, sizeof(bnode));
    bnode *root = sd_vec_push(&v);
    root->tok = -1;
    root->first = root->next = root->leaf = -1;
    root->depth = 0;
    for (int i = 0; i < n; i++) {
        if (lens[i] <= 0) {
            sd_vec_free(&v);
            sd_fail(err, SD_ERR_DATA, "token trie: allowed string %d is empty", i);
            return NULL;
        }
        int node = 0;
        for (int j = 0; j < lens[i]; j++) {
            int32_t t = seqs[i][j];
            if (t < 0 || t >= vocab || t == end_id) {
                sd_vec_free(&v);
                sd_fail(err, SD_ERR_DATA, "token trie: allowed string %d token %d is %d (%s)", i, j, t,
                        t == end_id ? "the end token" : "outside the vocabulary");
                return NULL;
            }
            node = bchild(&v, node, t);
        }
        node = bchild(&v, node, end_id);
        bnode *b = v.data;
        if (b[node].leaf >= 0) {
            int prev = b[node].leaf;
            sd_vec_free(&v);
            sd_fail(err, SD_ERR_DATA, "token trie: allowed strings %d and %d have the same tokens", prev, i);
            return NULL;
        }
        b[node].leaf = i;
    }
    /* flatten breadth-first */
    int N = (int)v.len;
    bnode *b = v.data;
    lm_trie *t = sd_calloc(1, sizeof *t);
    t->n_nodes = N;
    t->n_strings = n;
    t->end_id = end_id;
    t->child_start = sd_malloc(sizeof(int) * N);
    t->child_count = sd_malloc(sizeof(int) * N);
    t->edge_tok = sd_malloc(sizeof(int32_t) * N);
    t->edge_child = sd_malloc(sizeof(int) * N);
    t->depth = sd_malloc(sizeof(int) * N);
    t->parent = sd_malloc(sizeof(int) * N);
    t->token = sd_malloc(sizeof(int32_t) * N);
    t->leaf = sd_malloc(sizeof(int) * N);
    int *order = sd_malloc(sizeof(int) * N); /* BFS position -> build node */
    int head = 0, tail = 0, n_edges = 0;
    order[tail++] = 0;
    t->parent[0] = -1;
    while (head < tail) {
        int pos = head++, bn = order[pos];
        t->depth[pos] = b[bn].depth;
        t->token[pos] = b[bn].tok;
        t->leaf[pos] = b[bn].leaf;
        if (b[bn].depth > t->max_depth) t->max_depth = b[bn].depth;
        t->child_start[pos] = n_edges;
        t->child_count[pos] = 0;
        for (int c = b[bn].first; c >= 0; c = b[c].next) {
            t->edge_tok[n_edges] = b[c].tok;
            t->edge_child[n_edges] = tail;
            t->parent[tail] = pos;
            order[tail++] = c;
            n_edges++;
            t->child_count[pos]++;
        }
    }
    free(order);
    sd_vec_free(&v);
    /* the single string of each subtree: children come after their parent in BFS order, so a
     * reverse sweep sees every child before its parent (count = strings below, capped at 2) */
    t->only = sd_malloc(sizeof(int) * N);
    int *cnt = sd_calloc((size_t)N, sizeof(int));
    for (int nd = N - 1; nd >= 0; nd--) {
        if (t->leaf[nd] >= 0) cnt[nd] = 1, t->only[nd] = t->leaf[nd];
        else t->only[nd] = -1;
        for (int e = t->child_start[nd]; e < t->child_start[nd] + t->child_count[nd]; e++) {
            int ch = t->edge_child[e];
            cnt[nd] = cnt[nd] + cnt[ch] > 2 ? 2 : cnt[nd] + cnt[ch];
            if (cnt[ch] == 1) t->only[nd] = t->only[ch];
        }
        if (cnt[nd] != 1) t->only[nd] = -1;
    }
    free(cnt);
    return t;
}

void lm_trie_free(lm_trie *t) {
    if (!t) return;
    free(t->child_start);
    free(t->child_count);
    free(t->edge_tok);
    free(t->edge_child);
    free(t->depth);
    free(t->parent);
    free(t->token);
    free(t->leaf);
    free(t->only);
    free(t);
}

int lm_trie_count(const lm_trie *t) { return t->n_strings; }
int lm_trie_max_depth(const lm_trie *t) { return t->max_depth; }
int lm_trie_n_nodes(const lm_trie *t) { return t->n_nodes; }
int32_t lm_trie_end(const lm_trie *t) { return t->end_id; }

int lm_trie_children(const lm_trie *t, int node, const int32_t **tokens, const int **children) {
    *tokens = t->edge_tok + t->child_start[node];
    *children = t->edge_child + t->child_start[node];
    return t->child_count[node];
}

int lm_trie_leaf(const lm_trie *t, int node) { return t->leaf[node]; }
int lm_trie_only(const lm_trie *t, int node) { return t->only[node]; }
int lm_trie_depth(const lm_trie *t, int node) { return t->depth[node]; }
int lm_trie_parent(const lm_trie *t, int node) { return t->parent[node]; }
int32_t lm_trie_token(const lm_trie *t, int node) { return t->token[node]; }

/* Child of node along tok (binary search over the sorted edges), or -1. */
int lm_trie_step(const lm_trie *t, int node, int32_t tok) {
    int lo = t->child_start[node], hi = lo + t->child_count[node] - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (t->edge_tok[mid] == tok) return t->edge_child[mid];
        if (t->edge_tok[mid] < tok) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int lm_trie_match(const lm_trie *t, const int32_t *tokens, int n) {
    int node = 0;
    for (int i = 0; i < n && node >= 0; i++) node = lm_trie_step(t, node, tokens[i]);
    return node >= 0 ? t->leaf[node] : -1;
}
