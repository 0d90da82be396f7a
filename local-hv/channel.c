/* SPDX-License-Identifier: BSD-3-Clause */
/* The backend channel a frontend hands over: see channel.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/vhost_types.h>

#include <rte_config.h>
#include <rte_version.h>

#include "channel.h"
#include "log.h"

/*
 * rte_vhost's message context, DPDK 22.11 (lib/vhost/vhost_user.h, struct
 * vhu_msg_context; pre_msg_handle is given a pointer to it, and rte_vhost
 * asserts that the message is at its start). Both the context and the
 * message are packed:
 *
 *   0    the message: request, flags, size (u32 each), then the payload,
 *        a union whose largest member is the crypto session parameters
 *   644  int fds[8]: the descriptors that came with this message in
 *        SCM_RIGHTS, unused ones -1 (read_fd_message fills all eight on
 *        every message, whatever it carried)
 *   676  int fd_num: how many came
 *
 * That header is private, so what we can check at build time is the
 * release (rte_build_config.h) and our own arithmetic: the payload members
 * are rebuilt below from their types, three of them the very Linux
 * structures rte_vhost uses. lhv_channel_supported() checks the running
 * library's release too, since other releases share the soname. The
 * offsets were also read off Debian's librte_vhost.so.23.0 (22.11.11):
 * read_vhost_message passes ctx+0x284 and ctx+0x2a4 to read_fd_message
 * and refuses a payload over 0x278. tests/unit/local-hv/test_channel.c
 * takes a descriptor through the real library, which fails if it moved.
 * DPDK 25.03 grew the crypto member; a release not pinned here gets no
 * channel, never a guess (a note when building: a warning under clang,
 * so an error there with VRIO_WERROR).
 */
#if defined(RTE_VER_YEAR) && RTE_VER_YEAR == 22 && RTE_VER_MONTH == 11
#define VU_CTX_PINNED 1
#else
#define VU_CTX_PINNED 0
#pragma message("rte_vhost's message context is not pinned for this DPDK release: " \
		"local-hv is built without the backend channel (no vIOMMU)")
#endif

#define VU_HDR_SIZE	12
#define VU_MAX_FDS	8	/* VHOST_MEMORY_MAX_NREGIONS */

struct vu_crypto_2211 {			/* VhostUserCryptoSessionParam */
	int64_t session_id;
	uint32_t op_code, cipher_algo, cipher_key_len, hash_algo, digest_len, auth_key_len,
		aad_len;
	uint8_t op_type, dir, hash_mode, chaining_dir;
	uint8_t *cipher_key, *auth_key;
	uint8_t cipher_key_buf[64];
	uint8_t auth_key_buf[512];
};

union vu_payload_2211 {
	uint64_t u64;
	struct vhost_vring_state state;
	struct vhost_vring_addr addr;
	struct vhost_iotlb_msg iotlb;
	uint8_t memory[8 + VU_MAX_FDS * 32];	/* nregions, padding, regions */
	uint8_t log[16];
	struct vu_crypto_2211 crypto;
	uint8_t area[24];
	uint8_t inflight[20];
	uint8_t cfg[12 + 256];
};

struct vu_ctx_2211 {
	uint32_t request, flags, size;
	union vu_payload_2211 payload;
	int fds[VU_MAX_FDS];
	int fd_num;
} __attribute__((packed));

_Static_assert(sizeof(void *) == 8, "the pinned layout is LP64's");
_Static_assert(sizeof(union vu_payload_2211) == 632, "rte_vhost 22.11's payload is 632 bytes");
_Static_assert(offsetof(struct vu_ctx_2211, payload) == VU_HDR_SIZE, "message header");
_Static_assert(offsetof(struct vu_ctx_2211, fds) == 644, "fds[] follows the message");
_Static_assert(offsetof(struct vu_ctx_2211, fd_num) == 676, "fd_num follows fds[]");
_Static_assert(sizeof(struct vu_ctx_2211) == 680, "rte_vhost 22.11's context");

bool lhv_channel_supported(const char **why)
{
	int year = 0, month = 0;

	if (!VU_CTX_PINNED) {
		*why = "built against a DPDK release whose rte_vhost message context is not pinned";
		return false;
	}
	if (sscanf(rte_version(), "DPDK %d.%d", &year, &month) != 2 || year != 22 || month != 11) {
		*why = "running a DPDK release other than the 22.11 local-hv was built for";
		return false;
	}
	*why = NULL;
	return true;
}

static int sock_int(int fd, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);

	return getsockopt(fd, SOL_SOCKET, opt, &v, &len) == 0 ? v : -1;
}

/* The address a unix socket is bound to: its length past sun_family, 0 if
 * it has none, -1 if fd is not a unix socket. */
static int unix_name(int fd, struct sockaddr_un *sa)
{
	socklen_t len = sizeof(*sa);

	memset(sa, 0, sizeof(*sa));
	if (getsockname(fd, (struct sockaddr *)sa, &len) < 0 || sa->sun_family != AF_UNIX)
		return -1;
	return len > offsetof(struct sockaddr_un, sun_path) ?
		       (int)(len - offsetof(struct sockaddr_un, sun_path)) : 0;
}

static pid_t peer_pid(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 ? cr.pid : 0;
}

/*
 * Whether a connection accepted on the socket at path has pid at its other
 * end. rte_vhost does not give out its connections' descriptors, so they
 * are found among ours by their address: an accepted unix socket carries
 * the listening socket's. Control path, once per SET_SLAVE_REQ_FD.
 */
static bool frontend_is(const char *path, pid_t pid)
{
	size_t plen = strlen(path);
	struct sockaddr_un sa;
	struct dirent *e;
	bool found = false;
	DIR *dir;
	int fd, n;

	dir = opendir("/proc/self/fd");
	if (!dir)
		return false;
	while (!found && (e = readdir(dir))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		fd = atoi(e->d_name);
		if (fd == dirfd(dir) || sock_int(fd, SO_ACCEPTCONN) != 0)
			continue;
		n = unix_name(fd, &sa);
		if (n <= 0 || strnlen(sa.sun_path, (size_t)n) != plen ||
		    memcmp(sa.sun_path, path, plen) != 0)
			continue;
		found = peer_pid(fd) == pid;
	}
	closedir(dir);
	return found;
}

static bool held(const struct lhv_channel_peer *p, const struct stat *sb)
{
	struct stat hb;
	unsigned i;

	for (i = 0; i < p->n_held; i++)
		if (p->held[i] >= 0 && fstat(p->held[i], &hb) == 0 && hb.st_dev == sb->st_dev &&
		    hb.st_ino == sb->st_ino)
			return true;
	return false;
}

/* Why fd is not a frontend's end of a backend channel, or NULL. */
static const char *refuse(int fd, const struct lhv_channel_peer *p)
{
	struct sockaddr_un sa;
	struct stat sb;
	pid_t pid;

	if (fstat(fd, &sb) < 0 || !S_ISSOCK(sb.st_mode))
		return "is not a socket";
	if (sock_int(fd, SO_DOMAIN) != AF_UNIX || sock_int(fd, SO_TYPE) != SOCK_STREAM)
		return "is not a unix stream socket";
	if (unix_name(fd, &sa) != 0)
		return "has an address (a connection to a named socket, not a socketpair)";
	if (held(p, &sb))
		return "is a channel local-hv already holds";
	pid = peer_pid(fd);
	if (pid <= 0 || !frontend_is(p->socket, pid))
		return "was not made by a frontend connected to this device";
	return NULL;
}

/* The context's descriptors, checked to be as read_fd_message leaves
 * them: fd_num descriptors, then -1s. */
static int ctx_fds(const void *vu_ctx, const char *name, struct vu_ctx_2211 *c)
{
	int i;

	memcpy(c, vu_ctx, sizeof(*c));
	if (c->fd_num < 0 || c->fd_num > VU_MAX_FDS) {
		VRIO_ERR_RL("%s: rte_vhost's message context is not as built for (fd_num %d)",
			    name, c->fd_num);
		return -EPROTO;
	}
	for (i = 0; i < VU_MAX_FDS; i++) {
		if (i < c->fd_num ? c->fds[i] < 0 : c->fds[i] != -1) {
			VRIO_ERR_RL("%s: rte_vhost's message context is not as built for (fds[%d] %d of %d)",
				    name, i, c->fds[i], c->fd_num);
			return -EPROTO;
		}
	}
	return 0;
}

int lhv_channel_msg_fd(const void *vu_ctx, const char *name)
{
	struct vu_ctx_2211 c;
	const char *why;
	int rc;

	if (!lhv_channel_supported(&why))
		return -ENOTSUP;
	rc = ctx_fds(vu_ctx, name, &c);
	if (rc < 0)
		return rc;
	return c.fd_num == 1 ? c.fds[0] : -EBADF;
}

int lhv_channel_take(const void *vu_ctx, const struct lhv_channel_peer *p)
{
	struct vu_ctx_2211 c;
	const char *why;
	int fd;

	if (!lhv_channel_supported(&why)) {
		VRIO_WARN_RL("%s: backend channel refused: %s", p->name, why);
		return -ENOTSUP;
	}
	fd = ctx_fds(vu_ctx, p->name, &c);
	if (fd < 0)
		return fd;
	if (c.fd_num != 1) {
		VRIO_WARN_RL("%s: SET_SLAVE_REQ_FD came with %d descriptors, not 1; no backend channel",
			     p->name, c.fd_num);
		return -EBADF;
	}
	why = refuse(c.fds[0], p);
	if (why) {
		VRIO_WARN_RL("%s: the backend channel the frontend sent %s; refused", p->name, why);
		return -EPERM;
	}
	fd = fcntl(c.fds[0], F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		fd = -errno;
		VRIO_ERR_RL("%s: cannot keep the backend channel: %s", p->name, strerror(-fd));
	}
	return fd;
}
