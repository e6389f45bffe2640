/*
 * shared_dir - one open descriptor per directory per process (see shared_dir.h).
 *
 * The descriptors in use are an array indexed by descriptor number (they are
 * small integers), each entry with its device, inode and count of users, and
 * chained in a hash table on (device, inode) to find a directory that is open
 * already. Private to the process and its event loop: no locking.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mem.h"
#include "shared_dir.h"

struct slot {
    dev_t   dev;
    ino_t   ino;
    unsigned refs;                      /* 0: the descriptor is not ours */
    int     next;                       /* next descriptor in the bucket, -1: end */
};

static struct slot *slots;              /* by descriptor number */
static size_t nslots;
static int *buckets;                    /* head descriptor of each bucket, -1: empty */
static size_t nbuckets;                 /* a power of two */
static size_t inuse;

static size_t bucket_of(dev_t dev, ino_t ino)
{
    uint64_t h = ((uint64_t) dev * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t) ino * 0xc2b2ae3d27d4eb4fULL);

    return (size_t) (h ^ (h >> 31)) & (nbuckets - 1);
}

/* rehash - buckets for at least twice the descriptors in use */
static void rehash(void)
{
    size_t  n = nbuckets ? nbuckets * 2 : 256;

    free(buckets);
    buckets = xreallocarray(NULL, n, sizeof(*buckets));
    nbuckets = n;
    for (size_t i = 0; i < n; i++)
        buckets[i] = -1;
    for (size_t fd = 0; fd < nslots; fd++)
        if (slots[fd].refs > 0) {
            size_t  b = bucket_of(slots[fd].dev, slots[fd].ino);

            slots[fd].next = buckets[b];
            buckets[b] = (int) fd;
        }
}

/* shared_dir_adopt - the shared descriptor of fd's directory */
int shared_dir_adopt(int fd)
{
    struct stat sb;
    size_t  b;

    if (fd < 0)
        return -1;
    if (fstat(fd, &sb) != 0) {
        int     saved = errno;

        close(fd);
        errno = saved;
        return -1;
    }
    if (nbuckets == 0 || inuse >= nbuckets)
        rehash();
    b = bucket_of(sb.st_dev, sb.st_ino);
    for (int cur = buckets[b]; cur >= 0; cur = slots[cur].next)
        if (slots[cur].dev == sb.st_dev && slots[cur].ino == sb.st_ino) {
            close(fd);
            slots[cur].refs++;
            return cur;
        }
    if ((size_t) fd >= nslots) {
        size_t  n = nslots ? nslots : 64;

        while (n <= (size_t) fd)
            n *= 2;
        slots = xreallocarray(slots, n, sizeof(*slots));
        for (size_t i = nslots; i < n; i++)
            slots[i] = (struct slot) {0, 0, 0, -1};
        nslots = n;
    }
    slots[fd] = (struct slot) {sb.st_dev, sb.st_ino, 1, buckets[b]};
    buckets[b] = fd;
    inuse++;
    return fd;
}

/* shared_dir_release - close with the last user */
void shared_dir_release(int fd)
{
    size_t  b;

    if (fd < 0)
        return;
    if ((size_t) fd >= nslots || slots[fd].refs == 0) {
        close(fd);                      /* not shared: just ours */
        return;
    }
    if (--slots[fd].refs > 0)
        return;
    b = bucket_of(slots[fd].dev, slots[fd].ino);
    for (int *p = &buckets[b]; *p >= 0; p = &slots[*p].next)
        if (*p == fd) {
            *p = slots[fd].next;
            break;
        }
    slots[fd].next = -1;
    inuse--;
    close(fd);
}
