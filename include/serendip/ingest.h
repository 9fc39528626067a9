/* ingest.h - reading interaction logs and catalogues into a dataset (MovieLens in every published
 * layout, RecBole atomic files, or any CSV log with named columns and integer or string ids).
 * Formats are described in docs/formats-dataset.md. */
#ifndef SERENDIP_INGEST_H
#define SERENDIP_INGEST_H

#include "serendip/dataset.h"

/* At most this many user tags are added to an item's tags (the most frequent ones): popular movies
 * of MovieLens 20M+ carry thousands of distinct tags, and cluster descriptions need a few. */
#define INGEST_MAX_USER_TAGS 20

typedef struct {
    const char *layout;        /* "movielens-100k", "movielens-1m", "movielens-10m", "movielens-latest", "recbole", "csv" */
    int string_user_ids;       /* the dataset keeps string raw ids for users (dataset.bin version 2) */
    int string_item_ids;       /* ... for items */
    int64_t rating_rows;       /* rating records read */
    int64_t catalogue_rows;    /* catalogue records read */
    int64_t tag_rows;          /* user-tag records read (0 without a tags file) */
    int64_t tag_rows_ignored;  /* tag records naming an item absent from the catalogue */
    int64_t bytes;             /* input bytes read */
    int64_t n_users, n_items, n_events, n_unknown_items;
    double seconds;            /* wall time of the whole ingest */
} ingest_report;

/* Reads the MovieLens folder dir, whose layout is detected from the files present:
 *   u.data (+ u.item, u.genre)                    100k
 *   ratings.dat + movies.dat (+ tags.dat)          1M / 10M
 *   ratings.csv + movies.csv (+ tags.csv)          latest-small, latest, 20M, 25M, 32M
 *   one NAME.inter (+ NAME.item)                   RecBole atomic files (ingest_recbole)
 * Fills out (caller ds_free's it) and rep (may be NULL). Errors name file, line and field. */
int ingest_movielens(const char *dir, ds_dataset *out, ingest_report *rep, sd_err *err);

/* RecBole atomic files: path is a NAME.inter file or a folder holding exactly one; NAME.item beside
 * it is the optional catalogue. Tab-separated, typed header fields "name:type" (token, token_seq,
 * float, float_seq); the columns read are user_id:token, item_id:token, timestamp:float (float
 * seconds, floored), rating:float (optional), and in .item item_id:token, the title (movie_title,
 * title or name) and the tags (class, genre, genres, categories or tags; a token_seq's words are
 * tags). Ids are strings (ds_builder_add_*_str: all-integer ids become integer ids). */
int ingest_recbole(const char *path, ds_dataset *out, ingest_report *rep, sd_err *err);

/* A generic log: ratings file (one event per record) and an optional catalogue. Columns are
 * header names, or 1-based field numbers with no_header. NULL or "" = the column is absent. */
typedef struct {
    const char *ratings;   /* required */
    const char *items;     /* optional catalogue */
    const char *sep;       /* separator of both files, "," when NULL; "\t", "|", "::" ... */
    int no_header;         /* files have no header: columns are 1-based numbers */
    const char *user_col;  /* required */
    const char *item_col;  /* required, in both files */
    const char *ts_col;    /* required: unix seconds or YYYY-MM-DD[ HH:MM[:SS]] (UTC) */
    const char *rating_col; /* optional; an empty cell = no rating */
    const char *watch_col; /* optional, fraction in [0,1]; an empty cell = no value */
    const char *title_col; /* catalogue */
    const char *tags_col;  /* catalogue, '|'-separated */
    int int_ids;           /* 1: ids must be integers (an error names the first that is not);
                            * 0: ids are strings, and a side whose ids are all integers gets
                            * integer ids (ds_builder_add_*_str) */
} ingest_csv_opts;

int ingest_csv(const ingest_csv_opts *o, ds_dataset *out, ingest_report *rep, sd_err *err);

#endif
