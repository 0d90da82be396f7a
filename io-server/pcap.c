/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The pcap writer (pcap.h). The ring is a single-producer single-consumer
 * byte ring of whole pcap records (a record may wrap around its end): the
 * producer publishes `head` with a release store, the writer frees space
 * with `tail`. While frames keep coming the writer naps a millisecond
 * between passes, so the producer never makes a system call; after
 * IDLE_NAPS empty naps it says it sleeps and waits on an eventfd, which
 * the next frame writes once. Both sides order their store before their
 * load with a full fence, so at least one sees the other.
 *
 * A run of records goes to the file in one writev; a failed write is cut
 * back off the file, so a file always ends on a whole record.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "pcap.h"

#define NAP_MS		1
#define IDLE_NAPS	100
#define SLEEP_MS	1000
#define REOPEN_NS	1000000000ull	/* a file that could not be opened: retry after */

struct pcap_rec {
	uint32_t sec, nsec, incl_len, orig_len;
};

struct pcap_file_hdr {
	uint32_t magic;
	uint16_t major, minor;
	int32_t thiszone;
	uint32_t sigfigs, snaplen, linktype;
};

_Static_assert(sizeof(struct pcap_rec) == IOS_PCAP_REC_LEN, "pcap record header");
_Static_assert(sizeof(struct pcap_file_hdr) == IOS_PCAP_HDR_LEN, "pcap file header");

struct ios_pcap {
	char *path;
	uint8_t *ring;
	uint64_t size;			/* a power of two */
	uint64_t head;			/* atomic: the producer's */
	uint64_t tail;			/* atomic: the writer's */
	unsigned snaplen;		/* atomic */
	uint64_t max_size;		/* atomic */
	int efd;
	int sleeping;			/* atomic: the writer waits on efd */
	int stop;			/* atomic */
	pthread_t thread;

	/* The writer's. */
	int fd;				/* -1: none open */
	unsigned file_no;		/* 0: path, N: path.N */
	uint64_t file_size;		/* bytes in the open file */
	unsigned file_snaplen;		/* what its header says */
	uint64_t reopen_at;		/* monotonic ns; 0: none due */

	struct ios_pcap_stats st;	/* relaxed counters */

	/* The first file's identity, in the registry of files being
	 * captured to (open and close). */
	dev_t dev;
	ino_t ino;
	bool registered;
	struct ios_pcap *next_open;
};

/* Captures writing now, so that a second one never truncates and
 * interleaves a file another writes (two devices naming one path). */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ios_pcap *open_list;

static void ring_in(struct ios_pcap *p, uint64_t pos, const void *src, size_t n)
{
	size_t off = (size_t)(pos & (p->size - 1)), first = p->size - off;

	if (first >= n) {
		memcpy(p->ring + off, src, n);
		return;
	}
	memcpy(p->ring + off, src, first);
	memcpy(p->ring, (const uint8_t *)src + first, n - first);
}

static void ring_out(const struct ios_pcap *p, uint64_t pos, void *dst, size_t n)
{
	size_t off = (size_t)(pos & (p->size - 1)), first = p->size - off;

	if (first >= n) {
		memcpy(dst, p->ring + off, n);
		return;
	}
	memcpy(dst, p->ring + off, first);
	memcpy((uint8_t *)dst + first, p->ring, n - first);
}

/* ---- the producer ---- */

bool ios_pcap_add(struct ios_pcap *p, const uint8_t *frame, uint32_t len, uint64_t ts_ns)
{
	unsigned snap = __atomic_load_n(&p->snaplen, __ATOMIC_RELAXED);
	uint32_t cap = len < snap ? len : snap;
	uint64_t head = __atomic_load_n(&p->head, __ATOMIC_RELAXED);
	uint64_t tail = __atomic_load_n(&p->tail, __ATOMIC_ACQUIRE);
	struct pcap_rec rec = {
		.sec = (uint32_t)(ts_ns / 1000000000ull),
		.nsec = (uint32_t)(ts_ns % 1000000000ull),
		.incl_len = cap,
		.orig_len = len,
	};

	if (IOS_PCAP_REC_LEN + (uint64_t)cap > p->size - (head - tail))
		return false;
	ring_in(p, head, &rec, sizeof(rec));
	ring_in(p, head + sizeof(rec), frame, cap);
	__atomic_store_n(&p->head, head + sizeof(rec) + cap, __ATOMIC_RELEASE);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&p->sleeping, __ATOMIC_RELAXED) &&
	    __atomic_exchange_n(&p->sleeping, 0, __ATOMIC_ACQ_REL)) {
		uint64_t one = 1;

		if (write(p->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			VRIO_ERR_RL("%s: capture: cannot wake its writer: %s", p->path,
				    strerror(errno));
	}
	return true;
}

void ios_pcap_set(struct ios_pcap *p, unsigned snaplen, uint64_t max_size)
{
	__atomic_store_n(&p->snaplen, snaplen ? snaplen : 65535u, __ATOMIC_RELAXED);
	__atomic_store_n(&p->max_size, max_size, __ATOMIC_RELAXED);
}

/* ---- files ---- */

static void file_name(const struct ios_pcap *p, unsigned no, char *buf, size_t n)
{
	if (no)
		snprintf(buf, n, "%s.%u", p->path, no);
	else
		snprintf(buf, n, "%s", p->path);
}

/* Writes all of buf; -errno. */
static int write_all(int fd, struct iovec *iov, int iovcnt)
{
	ssize_t w;

	while (iovcnt > 0) {
		w = writev(fd, iov, iovcnt);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		while (iovcnt > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Registers the file open as fd as p's; -EBUSY if another capture has it. */
static int claim(struct ios_pcap *p, int fd)
{
	struct stat sb;
	int rc = 0;

	if (fstat(fd, &sb) < 0)
		return -errno;
	pthread_mutex_lock(&open_lock);
	for (struct ios_pcap *o = open_list; o; o = o->next_open)
		if (o->dev == sb.st_dev && o->ino == sb.st_ino)
			rc = -EBUSY;
	if (rc == 0) {
		p->dev = sb.st_dev;
		p->ino = sb.st_ino;
		p->registered = true;
		p->next_open = open_list;
		open_list = p;
	}
	pthread_mutex_unlock(&open_lock);
	return rc;
}

static void unclaim(struct ios_pcap *p)
{
	struct ios_pcap **pp;

	if (!p->registered)
		return;
	pthread_mutex_lock(&open_lock);
	for (pp = &open_list; *pp; pp = &(*pp)->next_open) {
		if (*pp == p) {
			*pp = p->next_open;
			break;
		}
	}
	pthread_mutex_unlock(&open_lock);
}

/* Opens file number `no` and writes its header. -errno, and why. */
static int file_open(struct ios_pcap *p, unsigned no, unsigned snaplen, char *why, size_t n)
{
	struct pcap_file_hdr h = {
		.magic = IOS_PCAP_MAGIC_NS,
		.major = 2,
		.minor = 4,
		.snaplen = snaplen,
		.linktype = IOS_PCAP_LINKTYPE_ETHERNET,
	};
	struct iovec iov = { .iov_base = &h, .iov_len = sizeof(h) };
	char name[4096 + 16];
	int fd, rc;

	file_name(p, no, name, sizeof(name));
	/* The first file is truncated once it is known to be no other
	 * capture's. */
	fd = open(name, O_WRONLY | O_CREAT | O_CLOEXEC | (no ? O_TRUNC : 0), 0640);
	if (fd < 0) {
		rc = -errno;
		snprintf(why, n, "cannot open %s: %s", name, strerror(-rc));
		return rc;
	}
	if (no == 0 && !p->registered) {
		rc = claim(p, fd);
		if (rc == 0 && ftruncate(fd, 0) < 0)
			rc = -errno;
		if (rc == -EBUSY)
			snprintf(why, n, "cannot capture to %s: another capture writes it", name);
		else if (rc < 0)
			snprintf(why, n, "cannot open %s: %s", name, strerror(-rc));
		if (rc < 0) {
			close(fd);
			return rc;
		}
	}
	rc = write_all(fd, &iov, 1);
	if (rc < 0) {
		snprintf(why, n, "cannot write %s: %s", name, strerror(-rc));
		close(fd);
		return rc;
	}
	p->fd = fd;
	p->file_no = no;
	p->file_size = sizeof(h);
	p->file_snaplen = snaplen;
	vrio_counter_add(&p->st.files, 1);
	return 0;
}

/* The writer: the next file, for a record of incl_len bytes. */
static void rotate(struct ios_pcap *p, uint32_t incl_len)
{
	unsigned snap = __atomic_load_n(&p->snaplen, __ATOMIC_RELAXED);
	uint64_t now = vrio_now_ns();
	char why[4200];

	if (p->fd >= 0) {
		close(p->fd);
		p->fd = -1;
		p->file_no++;
	} else if (p->reopen_at && now < p->reopen_at) {
		return;
	}
	if (file_open(p, p->file_no, snap > incl_len ? snap : incl_len, why, sizeof(why)) == 0) {
		p->reopen_at = 0;
		return;
	}
	vrio_counter_add(&p->st.errors, 1);
	VRIO_ERR_RL("capture: %s; frames are lost until it can be opened", why);
	p->reopen_at = now + REOPEN_NS;
}

/* Appends the records in ring[from, to) to the open file. */
static void write_run(struct ios_pcap *p, uint64_t from, uint64_t to, uint64_t frames)
{
	size_t off = (size_t)(from & (p->size - 1)), len = (size_t)(to - from);
	struct iovec iov[2];
	char name[4096 + 16];
	int n = 1, rc;

	if (from == to)
		return;
	iov[0].iov_base = p->ring + off;
	iov[0].iov_len = len;
	if (off + len > p->size) {
		iov[0].iov_len = p->size - off;
		iov[1].iov_base = p->ring;
		iov[1].iov_len = len - iov[0].iov_len;
		n = 2;
	}
	rc = write_all(p->fd, iov, n);
	if (rc == 0) {
		p->file_size += len;
		vrio_counter_add(&p->st.frames, frames);
		vrio_counter_add(&p->st.bytes, len);
		return;
	}
	vrio_counter_add(&p->st.errors, 1);
	vrio_counter_add(&p->st.lost, frames);
	file_name(p, p->file_no, name, sizeof(name));
	VRIO_ERR_RL("capture: writing %s: %s; %llu frames lost so far", name, strerror(-rc),
		    (unsigned long long)p->st.lost);
	/* Keep the file whole: what went in part goes. */
	if (ftruncate(p->fd, (off_t)p->file_size) < 0 || lseek(p->fd, 0, SEEK_END) < 0)
		VRIO_ERR_RL("capture: cannot cut %s back: %s", p->path, strerror(errno));
}

/* Writes the records in ring[from, to), starting new files where they
 * must. */
static void write_span(struct ios_pcap *p, uint64_t from, uint64_t to)
{
	uint64_t max = __atomic_load_n(&p->max_size, __ATOMIC_RELAXED);
	uint64_t pos = from, run = from, frames = 0, size;
	struct pcap_rec rec;
	uint64_t rlen;

	while (pos < to) {
		ring_out(p, pos, &rec, sizeof(rec));
		rlen = sizeof(rec) + rec.incl_len;
		size = p->file_size + (pos - run);
		if (p->fd < 0 || rec.incl_len > p->file_snaplen ||
		    (max && size > IOS_PCAP_HDR_LEN && size + rlen > max)) {
			if (p->fd >= 0)
				write_run(p, run, pos, frames);
			rotate(p, rec.incl_len);
			run = pos;
			frames = 0;
			if (p->fd < 0) {
				vrio_counter_add(&p->st.lost, 1);
				pos += rlen;
				run = pos;
				continue;
			}
		}
		frames++;
		pos += rlen;
	}
	if (p->fd >= 0)
		write_run(p, run, to, frames);
}

/* ---- the writer thread ---- */

static void drain_efd(struct ios_pcap *p)
{
	uint64_t v;

	if (read(p->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		VRIO_ERR_RL("%s: capture: eventfd: %s", p->path, strerror(errno));
}

static void nap(struct ios_pcap *p, int ms)
{
	struct pollfd pfd = { .fd = p->efd, .events = POLLIN };

	if (poll(&pfd, 1, ms) > 0)
		drain_efd(p);
}

static void *writer_main(void *arg)
{
	struct ios_pcap *p = arg;
	unsigned naps = 0;
	uint64_t head, tail;

	for (;;) {
		head = __atomic_load_n(&p->head, __ATOMIC_ACQUIRE);
		tail = __atomic_load_n(&p->tail, __ATOMIC_RELAXED);
		if (head != tail) {
			write_span(p, tail, head);
			__atomic_store_n(&p->tail, head, __ATOMIC_RELEASE);
			naps = 0;
			continue;
		}
		/* Whatever was added before the stop is visible after it. */
		if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
			if (__atomic_load_n(&p->head, __ATOMIC_ACQUIRE) != tail)
				continue;
			break;
		}
		if (naps < IDLE_NAPS) {
			nap(p, NAP_MS);
			naps++;
			continue;
		}
		__atomic_store_n(&p->sleeping, 1, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(&p->head, __ATOMIC_RELAXED) == tail &&
		    !__atomic_load_n(&p->stop, __ATOMIC_RELAXED))
			nap(p, SLEEP_MS);
		__atomic_store_n(&p->sleeping, 0, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* ---- life ---- */

static void pcap_free(struct ios_pcap *p)
{
	unclaim(p);
	if (p->fd >= 0)
		close(p->fd);
	if (p->efd >= 0)
		close(p->efd);
	free(p->ring);
	free(p->path);
	free(p);
}

int ios_pcap_open(const struct ios_pcap_opts *o, struct ios_pcap **out, char *why, size_t n)
{
	size_t ring = o->ring_bytes ? o->ring_bytes : IOS_PCAP_RING_BYTES;
	struct ios_pcap *p;
	int rc;

	if (!o->path || ring < 2 * (IOS_PCAP_REC_LEN + 65535u) || (ring & (ring - 1))) {
		snprintf(why, n, "capture: no file, or a ring of %zu bytes", ring);
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->fd = -1;
	p->efd = -1;
	p->size = ring;
	ios_pcap_set(p, o->snaplen, o->max_size);
	p->path = strdup(o->path);
	p->ring = malloc(ring);
	if (!p->path || !p->ring) {
		rc = -ENOMEM;
		goto err;
	}
	p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->efd < 0) {
		rc = -errno;
		snprintf(why, n, "capture: eventfd: %s", strerror(-rc));
		goto err;
	}
	rc = file_open(p, 0, p->snaplen, why, n);
	if (rc < 0)
		goto err;
	rc = -pthread_create(&p->thread, NULL, writer_main, p);
	if (rc < 0) {
		snprintf(why, n, "capture: no writer thread: %s", strerror(-rc));
		goto err;
	}
	*out = p;
	return 0;
err:
	pcap_free(p);
	return rc;
}

void ios_pcap_close(struct ios_pcap *p)
{
	uint64_t one = 1;

	if (!p)
		return;
	__atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
	if (write(p->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		VRIO_ERR("%s: capture: cannot wake its writer: %s", p->path, strerror(errno));
	pthread_join(p->thread, NULL);
	pcap_free(p);
}

void ios_pcap_get_stats(const struct ios_pcap *p, struct ios_pcap_stats *st)
{
	st->frames = vrio_counter_get(&p->st.frames);
	st->bytes = vrio_counter_get(&p->st.bytes);
	st->files = vrio_counter_get(&p->st.files);
	st->errors = vrio_counter_get(&p->st.errors);
	st->lost = vrio_counter_get(&p->st.lost);
	st->queued = __atomic_load_n(&p->head, __ATOMIC_RELAXED) -
		     __atomic_load_n(&p->tail, __ATOMIC_RELAXED);
}
