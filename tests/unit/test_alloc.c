/* xmalloc_big / xcalloc_big: 2 MiB-aligned, advised for huge pages (the mapping's VmFlags in
   /proc/self/smaps carry "hg", set by madvise(MADV_HUGEPAGE) whatever the kernel then
   grants), zeroed by xcalloc_big even where the heap hands back freed dirty memory, and
   plain for small sizes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "test.h"

/* 1 when the mapping holding p is advised MADV_HUGEPAGE, 0 when not, -1 if not found */
static int advised_huge(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int in = 0, found = -1;
    uintptr_t a = (uintptr_t)p;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) /* a mapping's first line */
            in = a >= lo && a < hi;
        else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            found = strstr(line, " hg") != NULL;
            break;
        }
    }
    fclose(f);
    return found;
}

int main(void)
{
    size_t n = (size_t)9 << 20; /* 9 MiB: not a multiple of the page */
    unsigned char *p = xmalloc_big(n);
    CHECK(((uintptr_t)p & (((size_t)2 << 20) - 1)) == 0, "xmalloc_big of 9 MiB is 2 MiB aligned");
    memset(p, 0xff, n);
    FILE *thp = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (thp == NULL) /* a kernel without transparent huge pages */
        CHECK(1, "# SKIP kernel without transparent huge pages");
    else {
        fclose(thp);
        CHECK(advised_huge(p) == 1, "its mapping is advised for huge pages (VmFlags hg)");
    }
    free(p);

    float *z = xcalloc_big(n / sizeof(float), sizeof(float));
    size_t nz = 0;
    for (size_t i = 0; i < n / sizeof(float); i++)
        nz += z[i] != 0.0f;
    CHECK(nz == 0, "xcalloc_big after a dirty free is all zeros (%zu not)", nz);
    free(z);

    /* below 2 MiB: plain xmalloc, still usable and freeable */
    char *s = xmalloc_big(100);
    memset(s, 1, 100);
    CHECK(s[99] == 1, "xmalloc_big of 100 bytes works");
    free(s);
    int *c = xcalloc_big(10, sizeof(int));
    CHECK(c[0] == 0 && c[9] == 0, "xcalloc_big of 10 ints is zeroed");
    free(c);
    (void)test_close; /* test.h's float comparison: not needed here */
    return test_done();
}
