/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * chain: the floor under a QD 1 round trip on this machine. A request goes
 * along a chain of processes and each answers back with RESP bytes, as a
 * read's data comes back; nothing else is done. Process 0 plays the guest
 * and times each round trip.
 *
 *   chain [-n PROCS] [-l shm|tcp] [-i ITERS] [-r RESP] [-w yield|pause]
 *
 * PROCS 2 is a guest and a local backend (qemu-storage-daemon's shape);
 * PROCS 3 puts a relay between them (local-hv between the guest and the
 * io-server). The first link is always shared memory (a virtqueue); the
 * others are LINK: shared memory with a sequence number, or TCP on
 * loopback (TCP_NODELAY, non-blocking receives). Every process busy-polls
 * the way vrio's pollers do: -w yield gives the core away after each empty
 * look (sched_yield), -w pause keeps it (a pause instruction).
 *
 * Prints the round trip's p50/p99/mean in us and the CPU seconds all
 * processes spent per round trip. Not a test: tests/bench/floor.sh runs it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS	4
#define MAX_RESP	65536
#define REQ_LEN		64

struct shm_link {
	volatile uint64_t req_seq;
	char pad0[56];
	volatile uint64_t resp_seq;
	char pad1[56];
	char req[REQ_LEN];
	char resp[MAX_RESP];
};

struct link {
	int tcp;		/* else shared memory */
	struct shm_link *shm;
	int fd[2];		/* tcp: the left end's and the right end's socket */
	uint64_t seq;		/* shm: the last request sent or seen */
};

static int use_pause;
static size_t resp_len = 4096;
static char scratch[MAX_RESP + REQ_LEN];

static void idle(void)
{
	if (use_pause)
		__builtin_ia32_pause();
	else
		sched_yield();
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void tcp_send(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len) {
		n = send(fd, p, len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			idle();
			continue;
		}
		if (n <= 0)
			die("send");
		p += n;
		len -= (size_t)n;
	}
}

static int tcp_recv(int fd, char *p, size_t len)
{
	ssize_t n;

	while (len) {
		n = recv(fd, p, len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			idle();
			continue;
		}
		if (n == 0)
			return -1;	/* the left end is done */
		if (n < 0)
			die("recv");
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Toward the right: send a request, wait for its answer. */
static void call(struct link *k)
{
	if (k->tcp) {
		tcp_send(k->fd[0], scratch, REQ_LEN);
		tcp_recv(k->fd[0], scratch, resp_len);
		return;
	}
	__atomic_store_n(&k->shm->req_seq, ++k->seq, __ATOMIC_RELEASE);
	while (__atomic_load_n(&k->shm->resp_seq, __ATOMIC_ACQUIRE) != k->seq)
		idle();
	memcpy(scratch, k->shm->resp, resp_len);
}

/* From the left: wait for a request; -1 when the chain is done. */
static int serve_wait(struct link *k)
{
	uint64_t s;

	if (k->tcp)
		return tcp_recv(k->fd[1], scratch, REQ_LEN);
	while ((s = __atomic_load_n(&k->shm->req_seq, __ATOMIC_ACQUIRE)) == k->seq)
		idle();
	if (s == UINT64_MAX)
		return -1;
	k->seq = s;
	return 0;
}

static void serve_answer(struct link *k)
{
	if (k->tcp) {
		tcp_send(k->fd[1], scratch, resp_len);
		return;
	}
	memcpy(k->shm->resp, scratch, resp_len);
	__atomic_store_n(&k->shm->resp_seq, k->seq, __ATOMIC_RELEASE);
}

static void tcp_pair(int fd[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int one = 1, l;

	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &alen) < 0)
		die("listen");
	fd[0] = socket(AF_INET, SOCK_STREAM, 0);
	if (fd[0] < 0 || connect(fd[0], (struct sockaddr *)&a, sizeof(a)) < 0)
		die("connect");
	fd[1] = accept(l, NULL, NULL);
	if (fd[1] < 0)
		die("accept");
	close(l);
	setsockopt(fd[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void usage(void)
{
	fprintf(stderr, "usage: chain [-n 2|3|4] [-l shm|tcp] [-i ITERS] [-r RESP] [-w yield|pause]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct link links[MAX_PROCS - 1];
	unsigned procs = 2, iters = 100000, i, p, warm;
	pid_t pids[MAX_PROCS];
	struct rusage ru;
	uint64_t *lat, t, sum = 0;
	double cpu;
	int tcp = 0, c;

	while ((c = getopt(argc, argv, "n:l:i:r:w:")) != -1) {
		switch (c) {
		case 'n': procs = (unsigned)atoi(optarg); break;
		case 'l': tcp = !strcmp(optarg, "tcp"); if (!tcp && strcmp(optarg, "shm")) usage(); break;
		case 'i': iters = (unsigned)atoi(optarg); break;
		case 'r': resp_len = (size_t)atol(optarg); break;
		case 'w': use_pause = !strcmp(optarg, "pause"); break;
		default: usage();
		}
	}
	if (procs < 2 || procs > MAX_PROCS || !iters || resp_len > MAX_RESP)
		usage();
	for (i = 0; i < procs - 1; i++) {
		memset(&links[i], 0, sizeof(links[i]));
		links[i].tcp = i > 0 && tcp;
		if (links[i].tcp) {
			tcp_pair(links[i].fd);
			continue;
		}
		links[i].shm = mmap(NULL, sizeof(struct shm_link), PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (links[i].shm == MAP_FAILED)
			die("mmap");
	}
	/* Process p serves link p-1 and, but for the last, calls link p. */
	for (p = 1; p < procs; p++) {
		pids[p] = fork();
		if (pids[p] < 0)
			die("fork");
		if (pids[p] == 0) {
			while (serve_wait(&links[p - 1]) == 0) {
				if (p < procs - 1)
					call(&links[p]);
				serve_answer(&links[p - 1]);
			}
			/* Pass the end along. */
			if (p < procs - 1) {
				if (links[p].tcp)
					shutdown(links[p].fd[0], SHUT_WR);
				else
					__atomic_store_n(&links[p].shm->req_seq, UINT64_MAX, __ATOMIC_RELEASE);
			}
			_exit(0);
		}
	}
	lat = calloc(iters, sizeof(*lat));
	if (!lat)
		die("calloc");
	warm = iters / 10;
	for (i = 0; i < warm + iters; i++) {
		t = now_ns();
		call(&links[0]);
		if (i >= warm)
			lat[i - warm] = now_ns() - t;
	}
	__atomic_store_n(&links[0].shm->req_seq, UINT64_MAX, __ATOMIC_RELEASE);
	for (p = 1; p < procs; p++)
		waitpid(pids[p], NULL, 0);
	for (i = 0; i < iters; i++)
		sum += lat[i];
	qsort(lat, iters, sizeof(*lat), cmp_u64);
	getrusage(RUSAGE_SELF, &ru);
	cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	getrusage(RUSAGE_CHILDREN, &ru);
	cpu += ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	printf("procs %u link %s wait %s resp %zu: p50 %.1f us p99 %.1f us mean %.1f us, cpu %.1f us per round trip\n",
	       procs, tcp ? "tcp" : "shm", use_pause ? "pause" : "yield", resp_len,
	       lat[iters / 2] / 1e3, lat[(uint64_t)iters * 99 / 100] / 1e3, (double)sum / iters / 1e3,
	       cpu * 1e6 / (warm + iters));
	free(lat);
	return 0;
}
