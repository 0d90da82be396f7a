/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * guest-tcp: a TCP stream whose receiver checks every byte, for the
 * end-to-end network throughput test (tests/e2e/net-tcp.sh).
 *
 *   guest-tcp server PORT [RUNS]
 *   guest-tcp client ADDR PORT SECONDS|BYTES [CONNS]
 *
 * SECONDS is a number ending in "s" ("8s"): the client sends for that long;
 * otherwise BYTES (with an optional K, M or G suffix) is what each
 * connection sends. The client opens CONNS (default 1) connections to
 * ADDR:PORT; each starts with a header (its seed, its index, how many
 * connections the run has), then streams a pattern that is a pure function
 * of the seed and the byte offset (the little-endian 64-bit word at offset
 * 8*i is seed + i * K, K a large odd constant), then shuts its sending side. The server takes the
 * run's connections, checks every byte against the pattern as it arrives,
 * and at end of stream answers each connection with the bytes it received
 * and whether they all matched; the client fails unless that is what it
 * sent. A lost, duplicated, reordered or corrupted segment that TCP's
 * checksum let through shows as a mismatch at its offset.
 *
 * The server serves RUNS runs (default 1) and exits. Each side prints one
 * "VRIO-RESULT: tcp-server|tcp-client ..." line with bytes, seconds, Mbit/s
 * and the retransmitted segments (RetransSegs of /proc/net/snmp over the
 * run; the client also sums tcpi_total_retrans of its connections), ending
 * in "ok", "MISMATCH" or "ERROR ...", and exits 0, 1 or 2 accordingly. The
 * client's time runs from its first connect to the last answer, so its
 * figure counts only data the server has checked. Built static for the
 * busybox initramfs of the e2e guests.
 *
 * GUEST_TCP_CORRUPT=OFFSET in the client's environment flips the byte at
 * that offset of its first connection, for a test that the server's check
 * fails (tests/integration/guest-tcp.sh).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x56475443u /* "VGTC" */
#define CHUNK (64u * 1024u)
#define MAX_CONNS 16u
#define SEND_BURST (4u * CHUNK)
#define IDLE_TIMEOUT_MS 60000
#define CONNECT_TRIES 60

enum { EXIT_OK = 0, EXIT_MISMATCH = 1, EXIT_ERROR = 2 };

/* All fields little-endian on the wire (the guests are x86). */
struct hello {
	uint32_t magic;
	uint16_t index;
	uint16_t conns;
	uint64_t seed;
	uint64_t bytes; /* what the client means to send, 0 when timed */
	uint64_t reserved;
};

struct answer {
	uint32_t magic;
	uint32_t status; /* 0: every byte matched */
	uint64_t bytes;  /* received */
	uint64_t first_bad; /* offset of the first mismatch, or bytes */
	uint64_t reserved;
};

struct conn {
	int fd;
	uint64_t seed;
	uint64_t off;   /* stream offset: bytes sent or received and checked */
	uint64_t limit; /* client: bytes to send, UINT64_MAX when timed */
	bool done;      /* client: shut for writing; server: end of stream */
	bool bad;       /* server: a mismatch was seen */
	uint64_t first_bad;
	/* client: the chunk being sent covers [chunk_off, chunk_off + CHUNK) */
	uint64_t chunk_off;
	size_t chunk_pos;
	uint64_t chunk[CHUNK / 8];
	struct answer ans;
	size_t ans_got;
	uint64_t corrupt; /* client: offset of a byte to send wrong, or UINT64_MAX */
};

/* The pattern's step: odd, so that no two offsets within 2^64 words share
 * a word. An arithmetic progression rather than a hash because a TCG guest
 * makes and checks it at a gigabit or more: one add per word, which the
 * compiler vectorizes, keeps guest-tcp from being what a run measures. */
#define STEP 0x9e3779b97f4a7c15ull

static uint64_t word_at(uint64_t seed, uint64_t index)
{
	return seed + index * STEP;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* snmp_retrans: RetransSegs of the Tcp: lines of /proc/net/snmp, or 0. */
static uint64_t snmp_retrans(void)
{
	char names[1024], values[1024];
	char *n, *v, *ns = NULL, *vs = NULL;
	uint64_t r = 0;
	FILE *f = fopen("/proc/net/snmp", "r");

	if (f == NULL)
		return 0;
	while (fgets(names, sizeof(names), f) != NULL) {
		if (strncmp(names, "Tcp:", 4) != 0)
			continue;
		if (fgets(values, sizeof(values), f) == NULL)
			break;
		n = strtok_r(names, " \n", &ns);
		v = strtok_r(values, " \n", &vs);
		while (n != NULL && v != NULL) {
			if (strcmp(n, "RetransSegs") == 0) {
				r = strtoull(v, NULL, 10);
				break;
			}
			n = strtok_r(NULL, " \n", &ns);
			v = strtok_r(NULL, " \n", &vs);
		}
		break;
	}
	fclose(f);
	return r;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	default: break;
	}
	if (*end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_port(const char *s, uint16_t *port)
{
	uint64_t v;

	if (parse_u64(s, &v) < 0 || v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* check: compares LEN received bytes at stream offset OFF with the
 * pattern; returns the offset of the first mismatch, or OFF + LEN. */
static uint64_t check(const uint8_t *buf, size_t len, uint64_t seed, uint64_t off)
{
	size_t i = 0;
	uint64_t w;

	/* Byte by byte up to a word boundary, then word by word. */
	while (i < len && ((off + i) & 7) != 0) {
		w = word_at(seed, (off + i) >> 3);
		if (buf[i] != (uint8_t)(w >> (8 * ((off + i) & 7))))
			return off + i;
		i++;
	}
	if (i + 8 <= len) {
		uint64_t want = word_at(seed, (off + i) >> 3), diff = 0;
		size_t j, words = (len - i) / 8;

		/* Branch-free over the whole run (vectorized); the rare
		 * mismatch is then placed byte by byte below. */
		for (j = 0; j < words; j++) {
			memcpy(&w, buf + i + 8 * j, 8);
			diff |= w ^ (want + j * STEP);
		}
		if (diff == 0)
			i += 8 * words;
	}
	for (; i < len; i++) {
		w = word_at(seed, (off + i) >> 3);
		if (buf[i] != (uint8_t)(w >> (8 * ((off + i) & 7))))
			return off + i;
	}
	return off + len;
}

static void fill_chunk(struct conn *c)
{
	uint64_t w0 = word_at(c->seed, c->chunk_off >> 3);
	unsigned int i;

	for (i = 0; i < CHUNK / 8; i++)
		c->chunk[i] = w0 + i * STEP;
	c->chunk_pos = 0;
}

/* read_full / write_full: blocking, for the header and the answer. */
static int read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = recv(fd, (char *)buf + got, len - got, 0);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	size_t put = 0;
	ssize_t n;

	while (put < len) {
		n = send(fd, (const char *)buf + put, len - put, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		put += (size_t)n;
	}
	return 0;
}

static void set_timeouts(int fd)
{
	struct timeval tv = { .tv_sec = IDLE_TIMEOUT_MS / 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void print_rate(const char *what, const char *where, unsigned int conns,
		       uint64_t bytes, double secs, uint64_t retrans)
{
	printf("VRIO-RESULT: %s %s conns=%u bytes=%" PRIu64 " secs=%.3f mbps=%.1f retrans=%" PRIu64,
	       what, where, conns, bytes, secs, secs > 0 ? (double)bytes * 8 / secs / 1e6 : 0.0,
	       retrans);
}

/* ---- server ---- */

static int listen_on(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, MAX_CONNS) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* accept_conn: the next connection of a run and its header. */
static int accept_conn(int lfd, struct conn *c, struct hello *h)
{
	int fd, rc;

	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		return -errno;
	set_timeouts(fd);
	rc = read_full(fd, h, sizeof(*h));
	if (rc == 0 && (h->magic != MAGIC || h->conns == 0 || h->conns > MAX_CONNS ||
			h->index >= h->conns))
		rc = -EPROTO;
	if (rc < 0) {
		close(fd);
		return rc;
	}
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->seed = h->seed;
	return 0;
}

/* serve_run: one run's connections, checked until each ends. */
static int serve_run(int lfd, uint16_t port)
{
	static struct conn conns[MAX_CONNS];
	static uint8_t buf[CHUNK];
	struct pollfd pfd[MAX_CONNS];
	struct hello h;
	unsigned int n, i, open_conns;
	uint64_t total = 0, r0;
	double t0;
	bool bad = false;
	char where[32];
	int rc;
	ssize_t got;

	rc = accept_conn(lfd, &conns[0], &h);
	if (rc < 0) {
		printf("VRIO-RESULT: tcp-server port=%u ERROR first connection: %s\n", port,
		       strerror(-rc));
		return EXIT_ERROR;
	}
	t0 = now_s();
	r0 = snmp_retrans();
	n = h.conns;
	for (i = 1; i < n; i++) {
		rc = accept_conn(lfd, &conns[i], &h);
		if (rc < 0 || h.conns != n) {
			printf("VRIO-RESULT: tcp-server port=%u ERROR connection %u of %u: %s\n", port,
			       i, n, rc < 0 ? strerror(-rc) : "run size differs");
			return EXIT_ERROR;
		}
	}
	open_conns = n;
	while (open_conns > 0) {
		for (i = 0; i < n; i++) {
			pfd[i].fd = conns[i].done ? -1 : conns[i].fd;
			pfd[i].events = POLLIN;
		}
		rc = poll(pfd, n, IDLE_TIMEOUT_MS);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0) {
			printf("VRIO-RESULT: tcp-server port=%u ERROR %s after %" PRIu64 " bytes\n", port,
			       rc == 0 ? "nothing for 60 s" : strerror(errno), total);
			return EXIT_ERROR;
		}
		for (i = 0; i < n; i++) {
			struct conn *c = &conns[i];

			if (c->done || (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
				continue;
			got = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (got < 0) {
				printf("VRIO-RESULT: tcp-server port=%u ERROR connection %u: %s\n", port,
				       i, strerror(errno));
				return EXIT_ERROR;
			}
			if (got == 0) {
				c->done = true;
				open_conns--;
				continue;
			}
			if (!c->bad) {
				uint64_t at = check(buf, (size_t)got, c->seed, c->off);

				if (at != c->off + (uint64_t)got) {
					c->bad = true;
					c->first_bad = at;
				}
			}
			c->off += (uint64_t)got;
			total += (uint64_t)got;
		}
	}
	for (i = 0; i < n; i++) {
		struct answer a = {
			.magic = MAGIC,
			.status = conns[i].bad ? 1 : 0,
			.bytes = conns[i].off,
			.first_bad = conns[i].bad ? conns[i].first_bad : conns[i].off,
		};

		if (conns[i].bad) {
			bad = true;
			fprintf(stderr, "guest-tcp: connection %u: first mismatch at byte %" PRIu64 "\n",
				i, conns[i].first_bad);
		}
		if (write_full(conns[i].fd, &a, sizeof(a)) < 0)
			fprintf(stderr, "guest-tcp: connection %u: cannot answer: %s\n", i,
				strerror(errno));
		close(conns[i].fd);
	}
	snprintf(where, sizeof(where), "port=%u", port);
	print_rate("tcp-server", where, n, total, now_s() - t0, snmp_retrans() - r0);
	printf(" %s\n", bad ? "MISMATCH" : "ok");
	return bad ? EXIT_MISMATCH : EXIT_OK;
}

static int run_server(int argc, char **argv)
{
	uint64_t runs = 1, r;
	uint16_t port;
	int lfd, rc = EXIT_OK, one;

	if (argc < 3 || argc > 4 || parse_port(argv[2], &port) < 0 ||
	    (argc == 4 && (parse_u64(argv[3], &runs) < 0 || runs == 0))) {
		fprintf(stderr, "usage: guest-tcp server PORT [RUNS]\n");
		return EXIT_ERROR;
	}
	lfd = listen_on(port);
	if (lfd < 0) {
		printf("VRIO-RESULT: tcp-server port=%u ERROR listen: %s\n", port, strerror(-lfd));
		return EXIT_ERROR;
	}
	printf("guest-tcp: listening on port %u\n", port);
	fflush(stdout);
	for (r = 0; r < runs; r++) {
		one = serve_run(lfd, port);
		fflush(stdout);
		if (one > rc)
			rc = one;
	}
	close(lfd);
	return rc;
}

/* ---- client ---- */

static int connect_to(const struct sockaddr_in *sa)
{
	int fd, tries;

	for (tries = 0; tries < CONNECT_TRIES; tries++) {
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
			return fd;
		close(fd);
		if (errno != ECONNREFUSED && errno != ETIMEDOUT && errno != EHOSTUNREACH &&
		    errno != ENETUNREACH)
			return -errno;
		sleep(1);
	}
	return -ETIMEDOUT;
}

/* send_some: what the socket takes now, up to SEND_BURST bytes so that the
 * caller looks at the clock often; marks the connection done (and shuts it
 * for writing) at its limit or once past the deadline. */
static int send_some(struct conn *c, bool past_deadline)
{
	uint64_t start = c->off;
	ssize_t n;
	size_t len;

	while (c->off - start < SEND_BURST) {
		if (past_deadline || c->off >= c->limit) {
			if (shutdown(c->fd, SHUT_WR) < 0)
				return -errno;
			c->done = true;
			return 0;
		}
		if (c->chunk_pos == CHUNK) {
			c->chunk_off += CHUNK;
			fill_chunk(c);
		}
		len = CHUNK - c->chunk_pos;
		if (len > c->limit - c->off)
			len = (size_t)(c->limit - c->off);
		if (c->corrupt >= c->off && c->corrupt - c->off < len)
			((uint8_t *)c->chunk)[c->chunk_pos + (c->corrupt - c->off)] ^= 0x5a;
		n = send(c->fd, (const uint8_t *)c->chunk + c->chunk_pos, len,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		c->chunk_pos += (size_t)n;
		c->off += (uint64_t)n;
	}
	return 0;
}

/* recv_answer: reads what has come of the server's answer; true when whole. */
static int recv_answer(struct conn *c)
{
	ssize_t n;

	n = recv(c->fd, (uint8_t *)&c->ans + c->ans_got, sizeof(c->ans) - c->ans_got, MSG_DONTWAIT);
	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	c->ans_got += (size_t)n;
	return c->ans_got == sizeof(c->ans);
}

static uint64_t tcpi_retrans(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return 0;
	return ti.tcpi_total_retrans;
}

static int run_client(int argc, char **argv)
{
	static struct conn conns[MAX_CONNS];
	struct pollfd pfd[MAX_CONNS];
	struct sockaddr_in sa = { .sin_family = AF_INET };
	uint64_t amount, nconns = 1, total = 0, r0, tretrans = 0, seed;
	unsigned int i, n, answered = 0;
	double t0, deadline = 0, elapsed;
	bool timed, bad = false;
	const char *a = argc > 4 ? argv[4] : "";
	const char *corrupt = getenv("GUEST_TCP_CORRUPT");
	size_t alen = strlen(a);
	char where[64], amt[32];
	int rc;

	if (argc < 5 || argc > 6 || inet_pton(AF_INET, argv[2], &sa.sin_addr) != 1 ||
	    parse_port(argv[3], &sa.sin_port) < 0 || alen == 0 || alen >= sizeof(amt) ||
	    (argc == 6 && (parse_u64(argv[5], &nconns) < 0 || nconns == 0 || nconns > MAX_CONNS))) {
		fprintf(stderr, "usage: guest-tcp client ADDR PORT SECONDS|BYTES [CONNS<=%u]\n",
			MAX_CONNS);
		return EXIT_ERROR;
	}
	timed = a[alen - 1] == 's';
	memcpy(amt, a, alen + 1);
	if (timed)
		amt[alen - 1] = '\0';
	if (parse_u64(amt, &amount) < 0 || amount == 0) {
		fprintf(stderr, "guest-tcp: not a duration or a byte count: %s\n", a);
		return EXIT_ERROR;
	}
	snprintf(where, sizeof(where), "peer=%s:%s", argv[2], argv[3]);
	sa.sin_port = htons(sa.sin_port);
	n = (unsigned int)nconns;
	seed = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
	r0 = snmp_retrans();
	for (i = 0; i < n; i++) {
		struct conn *c = &conns[i];
		struct hello h = {
			.magic = MAGIC,
			.index = (uint16_t)i,
			.conns = (uint16_t)n,
			.seed = seed + i,
			.bytes = timed ? 0 : amount,
		};

		rc = connect_to(&sa);
		if (rc >= 0) {
			c->fd = rc;
			set_timeouts(c->fd);
			rc = write_full(c->fd, &h, sizeof(h));
		}
		if (rc < 0) {
			printf("VRIO-RESULT: tcp-client %s ERROR connection %u: %s\n", where, i,
			       strerror(-rc));
			return EXIT_ERROR;
		}
		c->seed = h.seed;
		c->limit = timed ? UINT64_MAX : amount;
		c->corrupt = UINT64_MAX;
		if (i == 0 && corrupt != NULL && parse_u64(corrupt, &c->corrupt) < 0)
			c->corrupt = UINT64_MAX;
		fill_chunk(c);
	}
	/* The clock starts once all are connected: connect_to may have waited
	 * for the server to come up. */
	t0 = now_s();
	deadline = t0 + (double)amount;
	while (answered < n) {
		bool past = timed && now_s() >= deadline;

		for (i = 0; i < n; i++) {
			struct conn *c = &conns[i];

			if (!c->done) {
				rc = send_some(c, past);
				if (rc < 0) {
					printf("VRIO-RESULT: tcp-client %s ERROR connection %u: send: %s\n",
					       where, i, strerror(-rc));
					return EXIT_ERROR;
				}
			}
			pfd[i].fd = c->ans_got == sizeof(c->ans) ? -1 : c->fd;
			pfd[i].events = c->done ? POLLIN : POLLOUT;
		}
		rc = poll(pfd, n, timed && !past ? 100 : IDLE_TIMEOUT_MS);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0 || (rc == 0 && (!timed || past))) {
			printf("VRIO-RESULT: tcp-client %s ERROR %s\n", where,
			       rc == 0 ? "no progress for 60 s" : strerror(errno));
			return EXIT_ERROR;
		}
		for (i = 0; i < n; i++) {
			struct conn *c = &conns[i];

			if (!c->done || c->ans_got == sizeof(c->ans) || (pfd[i].revents & POLLIN) == 0)
				continue;
			rc = recv_answer(c);
			if (rc < 0) {
				printf("VRIO-RESULT: tcp-client %s ERROR connection %u: no answer: %s\n",
				       where, i, strerror(-rc));
				return EXIT_ERROR;
			}
			if (rc == 1)
				answered++;
		}
	}
	elapsed = now_s() - t0;
	for (i = 0; i < n; i++) {
		struct conn *c = &conns[i];

		if (c->ans.magic != MAGIC || c->ans.status != 0 || c->ans.bytes != c->off) {
			bad = true;
			fprintf(stderr,
				"guest-tcp: connection %u: sent %" PRIu64 " bytes, the server got %" PRIu64
				", status %u, first mismatch at %" PRIu64 "\n",
				i, c->off, c->ans.bytes, c->ans.status, c->ans.first_bad);
		}
		total += c->off;
		tretrans += tcpi_retrans(c->fd);
		close(c->fd);
	}
	print_rate("tcp-client", where, n, total, elapsed, snmp_retrans() - r0);
	printf(" tcpi_retrans=%" PRIu64 " %s\n", tretrans, bad ? "MISMATCH" : "ok");
	return bad ? EXIT_MISMATCH : EXIT_OK;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && strcmp(argv[1], "server") == 0)
		return run_server(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "client") == 0)
		return run_client(argc, argv);
	fprintf(stderr, "usage: guest-tcp server PORT [RUNS]\n"
			"       guest-tcp client ADDR PORT SECONDS|BYTES [CONNS]\n");
	return EXIT_ERROR;
}
