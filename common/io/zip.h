/* Reading ZIP archives held in memory (.npz members, PyTorch zip checkpoints): the central
   directory is trusted over local headers (numpy writes ZIP64 local headers with sizes
   0xFFFFFFFF), stored and deflated (zlib raw inflate) members, CRC-32 checked. Writing small
   archives of named members, stored or deflated, with ZIP64 when sizes need it. */
#ifndef ZIP_H
#define ZIP_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct zip_entry {
    char *name;
    uint64_t offset;      /* of the local header */
    uint64_t csize, usize;
    int method;           /* 0 stored, 8 deflated */
    uint32_t crc;
    uint64_t data;        /* offset of the member's bytes (after the local header) */
};

struct zip {
    const unsigned char *buf;
    size_t len;
    int n;
    struct zip_entry *e;
};

/* Parses the central directory of buf (not copied: keep it alive while using z). */
int zip_open(struct zip *z, const unsigned char *buf, size_t len, char *msg, size_t msglen);
void zip_close(struct zip *z);
int zip_find(const struct zip *z, const char *name); /* index or -1 */
/* Extracts entry i into a malloc'd buffer (*out, *outlen), checking sizes and CRC. For a stored
   member, zip_data gives a pointer into buf without copying (NULL if deflated). */
int zip_extract(const struct zip *z, int i, unsigned char **out, size_t *outlen, char *msg,
                size_t msglen);
const unsigned char *zip_data(const struct zip *z, int i);

/* Writes a whole archive of n members to f (a pipe is fine: no seeking). Deterministic:
   timestamps are 1980-01-01 00:00, so equal inputs give equal bytes. */
int zip_write(FILE *f, const char *const *names, const unsigned char *const *data,
              const size_t *lens, int n, int compress, char *msg, size_t msglen);
#endif
