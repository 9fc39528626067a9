/* fuzz_table.c - libFuzzer target: tbl_open_mem on arbitrary bytes, then every lookup of the
 * range it accepted (a lookup must never read outside the buffer).
 * fuzz-sources: src/base/base.c src/plan/table.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serendip/table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* copy to an aligned buffer of exactly size bytes, so ASan sees any overread */
    void *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    /* repair the header checksum (bytes 248..255) so that mutations reach the body checks; the
     * checksum refusal itself is covered by tests/test_table.c */
    if (size >= TBL_HEADER_SIZE) {
        uint64_t h = sd_hash64(buf, 248, SD_HASH_SEED);
        memcpy((uint8_t *)buf + 248, &h, 8);
    }
    tbl_table t;
    sd_err err;
    if (tbl_open_mem(&t, buf, size, &err) == SD_OK) {
        volatile float sink = 0;
        for (int64_t i = t.p.begin - 1; i <= t.p.end; i++) {
            const tbl_entry *e;
            uint32_t flags;
            int n = tbl_lookup(&t, i, &e, &flags);
            for (int j = 0; j < n; j++) sink += e[j].align_score + (float)e[j].cluster;
        }
        (void)sink;
        tbl_close(&t);
    }
    free(buf);
    return 0;
}
