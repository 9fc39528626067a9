/* test_base.c - RNG, atomic writes, hashing, paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "serendip/base.h"

static void test_rng_deterministic_and_in_range(void **state) {
    (void)state;
    sd_rng a, b;
    sd_rng_seed(&a, 42);
    sd_rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++) assert_int_equal(sd_rng_u64(&a), sd_rng_u64(&b));
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) {
        uint32_t x = sd_rng_below(&a, 7);
        assert_true(x < 7);
        counts[x]++;
    }
    /* each bucket expects 10000; 5 sigma of a binomial(70000, 1/7) is ~460 */
    for (int i = 0; i < 7; i++) assert_in_range(counts[i], 9540, 10460);
    double s = 0, s2 = 0;
    for (int i = 0; i < 100000; i++) {
        double z = sd_rng_normal(&a);
        s += z;
        s2 += z * z;
    }
    assert_true(fabs(s / 100000) < 0.02);
    assert_true(fabs(s2 / 100000 - 1) < 0.03);
}

static void test_fnv1a_known_values(void **state) {
    (void)state;
    /* published FNV-1a 64 test vectors */
    assert_true(sd_hash64("", 0, SD_HASH_SEED) == 0xcbf29ce484222325ULL);
    assert_true(sd_hash64("a", 1, SD_HASH_SEED) == 0xaf63dc4c8601ec8cULL);
    assert_true(sd_hash64("foobar", 6, SD_HASH_SEED) == 0x85944171f73967e8ULL);
}

static void test_atomic_write_keeps_old_on_abort(void **state) {
    (void)state;
    char dir[] = "/tmp/sdtestXXXXXX";
    assert_non_null(mkdtemp(dir));
    char *p = sd_path_join(dir, "f.txt");
    sd_err err = {0};
    assert_int_equal(sd_write_file_atomic(p, "old", 3, &err), SD_OK);
    sd_afile a;
    assert_int_equal(sd_afile_open(&a, p, &err), SD_OK);
    fputs("half-written new content", a.f);
    sd_afile_abort(&a);
    char *buf;
    size_t n;
    assert_int_equal(sd_read_file(p, &buf, &n, &err), SD_OK);
    assert_int_equal(n, 3);
    assert_string_equal(buf, "old");
    free(buf);
    assert_int_equal(sd_write_file_atomic(p, "new!", 4, &err), SD_OK);
    assert_int_equal(sd_read_file(p, &buf, &n, &err), SD_OK);
    assert_string_equal(buf, "new!");
    free(buf);
    /* a missing directory is an I/O error naming the path */
    char *bad = sd_path_join(dir, "no/such/dir/x");
    assert_int_equal(sd_write_file_atomic(bad, "x", 1, &err), SD_ERR_IO);
    assert_non_null(strstr(err.msg, "no/such/dir/x"));
    free(bad);
    unlink(p);
    rmdir(dir);
    free(p);
}

static void test_path_join_and_vec(void **state) {
    (void)state;
    char *a = sd_path_join("ws", "x.bin"), *b = sd_path_join("ws/", "x.bin");
    assert_string_equal(a, "ws/x.bin");
    assert_string_equal(b, "ws/x.bin");
    free(a);
    free(b);
    sd_vec v;
    sd_vec_init(&v, sizeof(int));
    for (int i = 0; i < 1000; i++) *(int *)sd_vec_push(&v) = i;
    assert_int_equal(v.len, 1000);
    assert_int_equal(((int *)v.data)[999], 999);
    sd_vec_free(&v);
}

static void test_replace_dir_and_remove_tree(void **state) {
    (void)state;
    char dir[] = "/tmp/sdtreeXXXXXX";
    assert_non_null(mkdtemp(dir));
    char *dst = sd_path_join(dir, "models"), *src = sd_path_join(dir, "models.new");
    char *old_file = sd_path_join(dst, "old.txt"), *sub = sd_path_join(src, "sub"), *new_file = sd_path_join(sub, "new.txt");
    sd_err err = {0};
    assert_int_equal(sd_mkdir_p(dst, &err), SD_OK);
    assert_int_equal(sd_write_file_atomic(old_file, "old", 3, &err), SD_OK);
    assert_int_equal(sd_mkdir_p(sub, &err), SD_OK);
    assert_int_equal(sd_write_file_atomic(new_file, "new", 3, &err), SD_OK);
    assert_int_equal(sd_replace_dir(src, dst, &err), SD_OK);
    char *moved = sd_path_join(dst, "sub/new.txt");
    assert_true(sd_file_exists(moved));   /* the new folder took the place */
    assert_false(sd_file_exists(old_file)); /* the old content is gone, */
    assert_false(sd_file_exists(src));      /* and so is the source name */
    /* a missing source leaves the destination as it was */
    assert_int_equal(sd_replace_dir(src, dst, &err), SD_ERR_IO);
    assert_true(sd_file_exists(moved));
    assert_int_equal(sd_remove_tree(dir, &err), SD_OK);
    assert_false(sd_file_exists(dir));
    assert_int_equal(sd_remove_tree(dir, &err), SD_OK); /* missing is fine */
    free(dst), free(src), free(old_file), free(sub), free(new_file), free(moved);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_deterministic_and_in_range),
        cmocka_unit_test(test_fnv1a_known_values),
        cmocka_unit_test(test_atomic_write_keeps_old_on_abort),
        cmocka_unit_test(test_path_join_and_vec),
        cmocka_unit_test(test_replace_dir_and_remove_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
