/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The TLS 1.3 layer (tls.h). It takes the socket of the tcp connection it
 * wraps and speaks TLS on it with a non-blocking SSL object: send()
 * gathers frames into a plaintext buffer as tcp.c does, flush() hands the
 * whole batch to SSL_write (one call per flush, records of up to 16 KiB),
 * poll() drains SSL_read into a linear buffer and lends whole frames in
 * place. WANT_READ means "wait for conn_fd() to be readable", which is
 * what the owner does anyway; WANT_WRITE leaves bytes pending, so the
 * owner flushes again. The io-server's side of the handshake advances in
 * poll() and flush(): nothing blocks a reactor. Buffers are allocated
 * once per connection and grow only for a frame larger than any before.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>

#include "log.h"
#include "tls.h"
#include "transport_internal.h"

#define TLS_BUF_INIT		(256u << 10)
#define TLS_SBUF_MAX		(64u << 20)
#define TLS_HANDSHAKE_MS	3000
#define TLS_PSK_INFO		"vrio-tls-psk-1"
#define TLS_EXPORTER_LABEL	"EXPORTER-vrio-auth-1"

struct vrio_tls_ctx {
	SSL_CTX *ssl_ctx;
	char name[64];
	bool server, psk;
	char identity[256];
	uint8_t psk_key[VRIO_TLS_PSK_LEN];	/* host side: derived once */
	vrio_tls_key_fn lookup;
	void *lookup_arg;
};

struct tls_conn {
	struct vrio_conn base;
	struct vrio_tls_ctx *x;
	SSL *ssl;
	int fd;
	bool up;			/* handshake done */
	uint8_t *rbuf;
	size_t rcap, rhead, rtail;	/* unparsed plaintext is rbuf[rhead, rtail) */
	uint8_t *sbuf;
	size_t scap, shead, stail;	/* plaintext not yet taken by SSL_write */
};

static const struct vrio_transport_ops tls_ops;

static struct tls_conn *to_tls(struct vrio_conn *c)
{
	return container_of(c, struct tls_conn, base);
}

/* OpenSSL's reason for the last failure, and its queue emptied. */
static const char *ssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();

	if (e)
		ERR_error_string_n(e, buf, len);
	else
		snprintf(buf, len, "%s", errno ? strerror(errno) : "connection closed");
	ERR_clear_error();
	return buf;
}

int vrio_tls_psk(const uint8_t *key, size_t key_len, const char *identity,
		 uint8_t out[VRIO_TLS_PSK_LEN])
{
	EVP_PKEY_CTX *p = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	uint8_t info[sizeof(TLS_PSK_INFO) + 256];
	size_t ilen = strlen(identity), olen = VRIO_TLS_PSK_LEN;
	int ok;

	if (!p)
		return -EIO;
	if (ilen > 255) {
		EVP_PKEY_CTX_free(p);
		return -EINVAL;
	}
	/* "vrio-tls-psk-1" | 0 | name: no name's PSK is another's. */
	memcpy(info, TLS_PSK_INFO, sizeof(TLS_PSK_INFO));
	memcpy(info + sizeof(TLS_PSK_INFO), identity, ilen);
	ok = EVP_PKEY_derive_init(p) > 0 && EVP_PKEY_CTX_set_hkdf_md(p, EVP_sha256()) > 0 &&
	     EVP_PKEY_CTX_set1_hkdf_key(p, key, (int)key_len) > 0 &&
	     EVP_PKEY_CTX_add1_hkdf_info(p, info, (int)(sizeof(TLS_PSK_INFO) + ilen)) > 0 &&
	     EVP_PKEY_derive(p, out, &olen) > 0 && olen == VRIO_TLS_PSK_LEN;
	EVP_PKEY_CTX_free(p);
	return ok ? 0 : -EIO;
}

static unsigned int psk_client_cb(SSL *ssl, const char *hint, char *identity,
				  unsigned int max_identity_len, unsigned char *psk,
				  unsigned int max_psk_len)
{
	struct vrio_tls_ctx *x = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));

	(void)hint;
	if (strlen(x->identity) + 1 > max_identity_len || max_psk_len < VRIO_TLS_PSK_LEN)
		return 0;
	memcpy(identity, x->identity, strlen(x->identity) + 1);
	memcpy(psk, x->psk_key, VRIO_TLS_PSK_LEN);
	return VRIO_TLS_PSK_LEN;
}

static unsigned int psk_server_cb(SSL *ssl, const char *identity, unsigned char *psk,
				  unsigned int max_psk_len)
{
	struct vrio_tls_ctx *x = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	uint8_t key[4096];
	size_t len = sizeof(key);
	int rc;

	if (!identity || max_psk_len < VRIO_TLS_PSK_LEN)
		return 0;
	rc = x->lookup(x->lookup_arg, identity, key, &len);
	if (rc == 0)
		rc = vrio_tls_psk(key, len, identity, psk);
	OPENSSL_cleanse(key, sizeof(key));
	if (rc < 0) {
		VRIO_WARN("%s: tls: no key for PSK identity '%.64s'", x->name, identity);
		return 0;
	}
	return VRIO_TLS_PSK_LEN;
}

struct vrio_tls_ctx *vrio_tls_ctx_new(const struct vrio_tls_opts *o)
{
	struct vrio_tls_ctx *x = calloc(1, sizeof(*x));
	char why[256];

	if (!x)
		return NULL;
	snprintf(x->name, sizeof(x->name), "%s", o->name ? o->name : "?");
	x->server = o->server;
	x->psk = o->psk;
	x->ssl_ctx = SSL_CTX_new(o->server ? TLS_server_method() : TLS_client_method());
	if (!x->ssl_ctx)
		goto err_ssl;
	SSL_CTX_set_app_data(x->ssl_ctx, x);
	if (!SSL_CTX_set_min_proto_version(x->ssl_ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(x->ssl_ctx, TLS1_3_VERSION))
		goto err_ssl;
	/* AES-GCM first (AES-NI makes it the cheapest where it exists);
	 * a PSK of ours has SHA-256, so AES-128-GCM or ChaCha20 there. */
	if (!SSL_CTX_set_ciphersuites(x->ssl_ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
						  "TLS_CHACHA20_POLY1305_SHA256"))
		goto err_ssl;
	SSL_CTX_set_options(x->ssl_ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* flush() retries with the same bytes, perhaps moved, perhaps more
	 * of them; no resumption: every connection does a full handshake. */
	SSL_CTX_set_mode(x->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_read_ahead(x->ssl_ctx, 1);
	/* A peer's close without close_notify is the end of the connection,
	 * as over tcp: frames carry their lengths, so nothing is cut short
	 * unseen. */
	SSL_CTX_set_options(x->ssl_ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_session_cache_mode(x->ssl_ctx, SSL_SESS_CACHE_OFF);
	if (o->psk && o->server) {
		if (!o->lookup)
			goto err_arg;
		x->lookup = o->lookup;
		x->lookup_arg = o->lookup_arg;
		SSL_CTX_set_psk_server_callback(x->ssl_ctx, psk_server_cb);
	} else if (o->psk) {
		if (!o->identity || strlen(o->identity) >= sizeof(x->identity) || !o->key)
			goto err_arg;
		snprintf(x->identity, sizeof(x->identity), "%s", o->identity);
		if (vrio_tls_psk(o->key, o->key_len, o->identity, x->psk_key) < 0)
			goto err_ssl;
		SSL_CTX_set_psk_client_callback(x->ssl_ctx, psk_client_cb);
	} else if (o->server) {
		if (SSL_CTX_use_certificate_chain_file(x->ssl_ctx, o->cert_file) != 1 ||
		    SSL_CTX_use_PrivateKey_file(x->ssl_ctx, o->key_file, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(x->ssl_ctx) != 1) {
			VRIO_ERR("%s: tls: cannot use certificate %s and key %s: %s", x->name,
				 o->cert_file, o->key_file, ssl_reason(why, sizeof(why)));
			goto err;
		}
	} else {
		if (SSL_CTX_load_verify_locations(x->ssl_ctx, o->ca_file, NULL) != 1) {
			VRIO_ERR("%s: tls: cannot load CA %s: %s", x->name, o->ca_file,
				 ssl_reason(why, sizeof(why)));
			goto err;
		}
		SSL_CTX_set_verify(x->ssl_ctx, SSL_VERIFY_PEER, NULL);
	}
	return x;
err_arg:
	VRIO_ERR("%s: tls: psk mode without a key", x->name);
	goto err;
err_ssl:
	VRIO_ERR("%s: tls: %s", x->name, ssl_reason(why, sizeof(why)));
err:
	vrio_tls_ctx_free(x);
	return NULL;
}

void vrio_tls_ctx_free(struct vrio_tls_ctx *x)
{
	if (!x)
		return;
	SSL_CTX_free(x->ssl_ctx);
	OPENSSL_cleanse(x->psk_key, sizeof(x->psk_key));
	free(x);
}

/* 0 once the handshake is done, -EAGAIN while it waits on the socket,
 * -EACCES if it failed (logged once). */
static int handshake(struct tls_conn *c)
{
	char why[256];
	int rc, err;

	if (c->up)
		return 0;
	ERR_clear_error();
	errno = 0;
	rc = SSL_do_handshake(c->ssl);
	if (rc == 1) {
		c->up = true;
		VRIO_DEBUG("%s: tls: %s %s", c->base.name, SSL_get_version(c->ssl),
			   SSL_get_cipher_name(c->ssl));
		return 0;
	}
	err = SSL_get_error(c->ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return -EAGAIN;
	VRIO_ERR("%s: tls: handshake failed: %s", c->base.name, ssl_reason(why, sizeof(why)));
	return -EACCES;
}

/* The host's side: the handshake before connect() returns. */
static int handshake_wait(struct tls_conn *c)
{
	struct timespec t0, t1;
	struct pollfd pfd = { .fd = c->fd };
	long left;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while ((rc = handshake(c)) == -EAGAIN) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		left = TLS_HANDSHAKE_MS - ((t1.tv_sec - t0.tv_sec) * 1000 +
					   (t1.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0) {
			VRIO_ERR("%s: tls: no handshake within %d ms", c->base.name,
				 TLS_HANDSHAKE_MS);
			return -ETIMEDOUT;
		}
		pfd.events = SSL_want_write(c->ssl) ? POLLOUT : POLLIN;
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			return -errno;
	}
	return rc;
}

int vrio_tls_wrap(struct vrio_tls_ctx *x, struct vrio_conn *inner, struct vrio_conn **out)
{
	struct tls_conn *c = calloc(1, sizeof(*c));
	int rc = -ENOMEM;

	if (!c)
		goto err;
	c->base.ops = &tls_ops;
	c->base.inner = inner;
	snprintf(c->base.name, sizeof(c->base.name), "%s", inner->name);
	c->x = x;
	c->fd = vrio_conn_fd(inner);
	c->rcap = c->scap = TLS_BUF_INIT;
	c->rbuf = malloc(c->rcap);
	c->sbuf = malloc(c->scap);
	c->ssl = SSL_new(x->ssl_ctx);
	if (!c->rbuf || !c->sbuf || !c->ssl)
		goto err;
	rc = -EINVAL;
	if (c->fd < 0 || SSL_set_fd(c->ssl, c->fd) != 1)
		goto err;
	if (x->server) {
		SSL_set_accept_state(c->ssl);
	} else {
		SSL_set_connect_state(c->ssl);
		rc = handshake_wait(c);
		if (rc < 0)
			goto err_conn;
	}
	*out = &c->base;
	return 0;
err:
	if (c)
		VRIO_ERR("%s: tls: cannot set up the connection", inner->name);
err_conn:
	if (c) {
		SSL_free(c->ssl);
		free(c->rbuf);
		free(c->sbuf);
		free(c);
	}
	inner->ops->close(inner);
	return rc;
}

static int sbuf_reserve(struct tls_conn *c, size_t need)
{
	size_t used = c->stail - c->shead, ncap;
	uint8_t *nb;

	if (c->scap - c->stail >= need)
		return 0;
	if (c->shead) {
		memmove(c->sbuf, c->sbuf + c->shead, used);
		c->shead = 0;
		c->stail = used;
		if (c->scap - c->stail >= need)
			return 0;
	}
	if (used + need > TLS_SBUF_MAX)
		return -ENOBUFS;
	ncap = c->scap;
	while (ncap < used + need)
		ncap *= 2;
	nb = realloc(c->sbuf, ncap);
	if (!nb)
		return -ENOMEM;
	c->sbuf = nb;
	c->scap = ncap;
	return 0;
}

static int tls_send(struct vrio_conn *vc, const struct vrio_frame *f, const struct iovec *iov,
		    int iovcnt)
{
	struct tls_conn *c = to_tls(vc);
	size_t total = 0;
	int i, rc;

	for (i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (total != f->len || total > VRIO_FRAME_MAX_PAYLOAD)
		return -EINVAL;
	rc = sbuf_reserve(c, VRIO_FRAME_HDR_LEN + total);
	if (rc < 0)
		return rc;
	vrio_frame_encode(f, c->sbuf + c->stail);
	c->stail += VRIO_FRAME_HDR_LEN;
	for (i = 0; i < iovcnt; i++) {
		memcpy(c->sbuf + c->stail, iov[i].iov_base, iov[i].iov_len);
		c->stail += iov[i].iov_len;
	}
	c->base.stats.frames_tx++;
	c->base.stats.bytes_tx += VRIO_FRAME_HDR_LEN + total;
	return 0;
}

/* An SSL_read or SSL_write that returned rc <= 0: -EAGAIN to wait, or
 * the connection's end. */
static int ssl_fail(struct tls_conn *c, int rc, const char *what)
{
	char why[256];
	int err = SSL_get_error(c->ssl, rc);

	switch (err) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return -ECONNRESET;
	case SSL_ERROR_SYSCALL:
		if (!ERR_peek_last_error())
			return errno && errno != EPIPE ? -errno : -ECONNRESET;
		/* fall through */
	default:
		VRIO_ERR("%s: tls: %s failed: %s", c->base.name, what, ssl_reason(why, sizeof(why)));
		return -EBADMSG;
	}
}

static int tls_flush(struct vrio_conn *vc)
{
	struct tls_conn *c = to_tls(vc);
	int rc;

	rc = handshake(c);
	if (rc == -EAGAIN)
		return c->shead < c->stail;
	if (rc < 0)
		return rc;
	while (c->shead < c->stail) {
		ERR_clear_error();
		errno = 0;
		rc = SSL_write(c->ssl, c->sbuf + c->shead, (int)(c->stail - c->shead));
		if (rc <= 0) {
			rc = ssl_fail(c, rc, "write");
			return rc == -EAGAIN ? 1 : rc;
		}
		c->shead += (size_t)rc;
	}
	c->shead = c->stail = 0;
	return 0;
}

static int tls_pending(struct vrio_conn *vc)
{
	struct tls_conn *c = to_tls(vc);

	return c->shead < c->stail;
}

/* Decrypt one record's worth into the receive buffer: 1 if bytes came,
 * 0 if SSL waits on the socket, or -errno. */
static int rbuf_fill(struct tls_conn *c, size_t want)
{
	uint8_t *nb;
	int n;

	if (c->rhead == c->rtail) {
		c->rhead = c->rtail = 0;
	} else if (c->rhead && c->rcap - c->rhead < want) {
		memmove(c->rbuf, c->rbuf + c->rhead, c->rtail - c->rhead);
		c->rtail -= c->rhead;
		c->rhead = 0;
	}
	if (c->rcap - c->rhead < want) {
		nb = realloc(c->rbuf, c->rhead + want);
		if (!nb)
			return -ENOMEM;
		c->rbuf = nb;
		c->rcap = c->rhead + want;
	}
	ERR_clear_error();
	errno = 0;
	n = SSL_read(c->ssl, c->rbuf + c->rtail, (int)(c->rcap - c->rtail));
	if (n > 0) {
		c->rtail += (size_t)n;
		c->base.stats.bytes_rx += (uint64_t)n;
		return 1;
	}
	n = ssl_fail(c, n, "read");
	return n == -EAGAIN ? 0 : n;
}

static int tls_poll(struct vrio_conn *vc, vrio_recv_cb cb, void *arg, unsigned budget)
{
	struct tls_conn *c = to_tls(vc);
	struct vrio_frame f;
	unsigned done = 0;
	size_t avail, want;
	int rc;

	rc = handshake(c);
	if (rc == -EAGAIN)
		return 0;
	if (rc < 0)
		return rc;
	while (done < budget) {
		avail = c->rtail - c->rhead;
		want = VRIO_FRAME_HDR_LEN;
		if (avail >= VRIO_FRAME_HDR_LEN) {
			rc = vrio_frame_decode(c->rbuf + c->rhead, &f);
			if (rc < 0)
				return rc;
			want += f.len;
			if (avail >= want) {
				rc = cb(arg, vc, &f, c->rbuf + c->rhead + VRIO_FRAME_HDR_LEN);
				c->rhead += want;
				c->base.stats.frames_rx++;
				if (rc < 0)
					return rc;
				done++;
				continue;
			}
		}
		/* Read until SSL waits on the socket: then neither it nor
		 * we hold a whole frame, and the owner may sleep. */
		rc = rbuf_fill(c, want > TLS_BUF_INIT ? want : TLS_BUF_INIT);
		if (rc < 0)
			return rc;
		if (rc == 0)
			break;
	}
	return (int)done;
}

static int tls_sleep_prepare(struct vrio_conn *vc)
{
	struct tls_conn *c = to_tls(vc);

	return c->up && SSL_has_pending(c->ssl);
}

static int tls_conn_fd(struct vrio_conn *vc)
{
	return to_tls(vc)->fd;
}

static void tls_close(struct vrio_conn *vc)
{
	struct tls_conn *c;

	if (!vc)
		return;
	c = to_tls(vc);
	/* No close_notify: the peer sees the socket close, as over tcp. */
	SSL_free(c->ssl);
	c->base.inner->ops->close(c->base.inner);
	free(c->rbuf);
	free(c->sbuf);
	free(c);
}

int vrio_tls_binding(struct vrio_conn *vc, uint8_t out[VRIO_TLS_BINDING_LEN])
{
	struct tls_conn *c;

	while (vc && vc->ops != &tls_ops)
		vc = vc->inner;
	if (!vc)
		return -ENOENT;
	c = to_tls(vc);
	if (!c->up)
		return -EAGAIN;
	if (SSL_export_keying_material(c->ssl, out, VRIO_TLS_BINDING_LEN, TLS_EXPORTER_LABEL,
				       strlen(TLS_EXPORTER_LABEL), NULL, 0, 0) != 1) {
		ERR_clear_error();
		return -EIO;
	}
	return 0;
}

static const struct vrio_transport_ops tls_ops = {
	.name = "tls",
	.send = tls_send,
	.flush = tls_flush,
	.poll = tls_poll,
	.close = tls_close,
	.conn_fd = tls_conn_fd,
	.sleep_prepare = tls_sleep_prepare,
	.pending = tls_pending,
};
