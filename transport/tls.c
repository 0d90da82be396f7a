/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The TLS 1.3 layer (tls.h). It takes the socket of the tcp connection it
 * wraps and speaks TLS on it with a non-blocking SSL object: send()
 * gathers frames into a plaintext buffer as tcp.c does, flush() hands the
 * whole batch to SSL_write (one call per flush, records of up to 16 KiB),
 * poll() drains SSL_read into a linear buffer and lends whole frames in
 * place. SSL reads and writes through a BIO of our own over two
 * ciphertext buffers, so that the socket sees one send() per flush and one
 * recv() per poll, however many records they hold, as over tcp. WANT_READ
 * means "wait for conn_fd() to be readable", which is what the owner does
 * anyway; ciphertext the socket did not take leaves the connection
 * pending, so the owner flushes again. The io-server's side of the
 * handshake advances in poll() and flush(): nothing blocks a reactor.
 * Buffers are allocated once per connection and grow only for a frame
 * larger than any before. The plaintext framing is tcp.c's (stream.h).
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>

#include "log.h"
#include "stream.h"
#include "tls.h"
#include "transport_internal.h"

#define TLS_BUF_INIT		(256u << 10)
#define TLS_CIN_LEN		(256u << 10)	/* one recv() at most this much */
#define TLS_COUT_MAX		(4u << 20)	/* ciphertext the socket has not taken */
#define TLS_SBUF_MAX		(64u << 20)
#define TLS_HANDSHAKE_MS	3000
#define TLS_PSK_INFO		"vrio-tls-psk-1"
#define TLS_EXPORTER_LABEL	"EXPORTER-vrio-auth-1"

struct vrio_tls_ctx {
	SSL_CTX *ssl_ctx;
	BIO_METHOD *bio_method;
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
	struct vrio_rbuf rx;		/* plaintext SSL_read gave, not yet parsed */
	struct vrio_sbuf tx;		/* plaintext not yet taken by SSL_write */
	uint8_t *cin;
	size_t cin_head, cin_tail;	/* ciphertext received, not yet taken by SSL */
	struct vrio_sbuf cout;		/* ciphertext not yet sent */
	bool eof;			/* the peer closed its side */
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

/* The BIO under SSL: writes append to cout, reads take from cin. */
static int bio_write(BIO *b, const char *data, size_t len, size_t *written)
{
	struct tls_conn *c = BIO_get_data(b);
	int rc;

	BIO_clear_retry_flags(b);
	rc = vrio_sbuf_reserve(&c->cout, len);
	if (rc == -ENOBUFS) {
		BIO_set_retry_write(b);
		return 0;
	}
	if (rc < 0)
		return 0;
	memcpy(c->cout.buf + c->cout.tail, data, len);
	vrio_sbuf_commit(&c->cout, len);
	*written = len;
	return 1;
}

static int bio_read(BIO *b, char *out, size_t len, size_t *readbytes)
{
	struct tls_conn *c = BIO_get_data(b);
	size_t avail = c->cin_tail - c->cin_head;

	BIO_clear_retry_flags(b);
	if (!avail) {
		if (!c->eof)
			BIO_set_retry_read(b);
		return 0;
	}
	if (len > avail)
		len = avail;
	memcpy(out, c->cin + c->cin_head, len);
	c->cin_head += len;
	*readbytes = len;
	return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_conn *c = BIO_get_data(b);

	(void)num, (void)ptr;
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_PENDING:
		return (long)(c->cin_tail - c->cin_head);
	case BIO_CTRL_WPENDING:
		return (long)(c->cout.tail - c->cout.head);
	case BIO_CTRL_EOF:
		return c->eof && c->cin_head == c->cin_tail;
	default:
		return 0;
	}
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

/* Send what SSL wrote: 0 when all of it left, 1 if the socket is full,
 * or -errno. */
static int net_push(struct tls_conn *c)
{
	return vrio_sbuf_push(&c->cout, vrio_stream_fd_write, &c->fd);
}

/* One recv() into cin: 1 if bytes came, 0 if none (or the peer closed:
 * then eof is set), or -errno. */
static int net_pull(struct tls_conn *c)
{
	ssize_t n;

	if (c->cin_head == c->cin_tail) {
		c->cin_head = c->cin_tail = 0;
	} else if (c->cin_head) {
		memmove(c->cin, c->cin + c->cin_head, c->cin_tail - c->cin_head);
		c->cin_tail -= c->cin_head;
		c->cin_head = 0;
	}
	if (c->cin_tail == TLS_CIN_LEN || c->eof)
		return 0;
	for (;;) {
		n = recv(c->fd, c->cin + c->cin_tail, TLS_CIN_LEN - c->cin_tail, MSG_DONTWAIT);
		if (n > 0) {
			c->cin_tail += (size_t)n;
			return 1;
		}
		if (n == 0) {
			c->eof = true;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -errno;
	}
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
	x->bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "vrio-tls");
	if (!x->bio_method || !BIO_meth_set_write_ex(x->bio_method, bio_write) ||
	    !BIO_meth_set_read_ex(x->bio_method, bio_read) ||
	    !BIO_meth_set_ctrl(x->bio_method, bio_ctrl) ||
	    !BIO_meth_set_create(x->bio_method, bio_create))
		goto err_ssl;
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
	SSL_CTX_set_num_tickets(x->ssl_ctx, 0);
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
	BIO_meth_free(x->bio_method);
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
	for (;;) {
		ERR_clear_error();
		errno = 0;
		rc = SSL_do_handshake(c->ssl);
		err = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, rc);
		/* Our flight, or an alert, goes out whatever happened. */
		if (net_push(c) < 0 && err == SSL_ERROR_NONE)
			return -ECONNRESET;
		if (rc == 1) {
			c->up = true;
			VRIO_DEBUG("%s: tls: %s %s", c->base.name, SSL_get_version(c->ssl),
				   SSL_get_cipher_name(c->ssl));
			return 0;
		}
		if (err == SSL_ERROR_WANT_WRITE)
			return -EAGAIN;
		if (err != SSL_ERROR_WANT_READ)
			break;
		rc = net_pull(c);
		if (rc < 0)
			return rc;
		if (rc == 0 && !c->eof)
			return -EAGAIN;
		if (rc == 0) {
			VRIO_ERR("%s: tls: the peer closed during the handshake", c->base.name);
			return -ECONNRESET;
		}
	}
	VRIO_ERR_RL("%s: tls: handshake failed: %s", c->base.name, ssl_reason(why, sizeof(why)));
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
		pfd.events = vrio_sbuf_pending(&c->cout) ? POLLOUT : POLLIN;
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			return -errno;
	}
	return rc;
}

int vrio_tls_wrap(struct vrio_tls_ctx *x, struct vrio_conn *inner, struct vrio_conn **out)
{
	struct tls_conn *c = calloc(1, sizeof(*c));
	int rc = -ENOMEM;
	BIO *bio;

	if (!c)
		goto err;
	c->base.ops = &tls_ops;
	c->base.inner = inner;
	snprintf(c->base.name, sizeof(c->base.name), "%s", inner->name);
	c->x = x;
	c->fd = vrio_conn_fd(inner);
	if (vrio_rbuf_init(&c->rx, TLS_BUF_INIT) < 0 ||
	    vrio_sbuf_init(&c->tx, TLS_BUF_INIT, TLS_SBUF_MAX) < 0 ||
	    vrio_sbuf_init(&c->cout, TLS_BUF_INIT, TLS_COUT_MAX) < 0)
		goto err;
	c->cin = malloc(TLS_CIN_LEN);
	c->ssl = SSL_new(x->ssl_ctx);
	if (!c->cin || !c->ssl)
		goto err;
	rc = -EINVAL;
	if (c->fd < 0)
		goto err;
	bio = BIO_new(x->bio_method);
	if (!bio)
		goto err;
	BIO_set_data(bio, c);
	SSL_set_bio(c->ssl, bio, bio);
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
		vrio_rbuf_fini(&c->rx);
		vrio_sbuf_fini(&c->tx);
		free(c->cin);
		vrio_sbuf_fini(&c->cout);
		free(c);
	}
	inner->ops->close(inner);
	return rc;
}

static int tls_send(struct vrio_conn *vc, const struct vrio_frame *f, const struct iovec *iov,
		    int iovcnt)
{
	return vrio_sbuf_put_frame(&to_tls(vc)->tx, vc, f, iov, iovcnt);
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

/* The write callback of the plaintext buffer: what SSL_write took, or 0
 * once the socket is full. */
static ssize_t tls_write(void *arg, const void *buf, size_t len)
{
	struct tls_conn *c = arg;
	int rc;

	for (;;) {
		ERR_clear_error();
		errno = 0;
		rc = SSL_write(c->ssl, buf, (int)len);
		if (rc > 0)
			return rc;
		rc = ssl_fail(c, rc, "write");
		if (rc != -EAGAIN)
			return rc;
		/* cout is full: the socket must take some first. */
		rc = net_push(c);
		if (rc != 0)
			return rc < 0 ? rc : 0;
	}
}

static int tls_flush(struct vrio_conn *vc)
{
	struct tls_conn *c = to_tls(vc);
	int rc;

	rc = handshake(c);
	if (rc == -EAGAIN)
		return vrio_sbuf_pending(&c->tx) || vrio_sbuf_pending(&c->cout);
	if (rc < 0)
		return rc;
	rc = vrio_sbuf_push(&c->tx, tls_write, c);
	if (rc != 0)
		return rc;
	return net_push(c);
}

static int tls_pending(struct vrio_conn *vc)
{
	struct tls_conn *c = to_tls(vc);

	return vrio_sbuf_pending(&c->tx) || vrio_sbuf_pending(&c->cout);
}

/* The read callback of the plaintext buffer: decrypt one record's worth.
 * 0 if SSL waits on the socket. */
static ssize_t tls_read(void *arg, void *buf, size_t len)
{
	struct tls_conn *c = arg;
	int n;

	ERR_clear_error();
	errno = 0;
	n = SSL_read(c->ssl, buf, (int)len);
	if (n > 0)
		return n;
	n = ssl_fail(c, n, "read");
	if (n == -EAGAIN && c->eof && c->cin_head == c->cin_tail)
		return -ECONNRESET;
	return n == -EAGAIN ? 0 : n;
}

static int tls_poll(struct vrio_conn *vc, vrio_recv_cb cb, void *arg, unsigned budget)
{
	struct tls_conn *c = to_tls(vc);
	unsigned done = 0;
	bool pulled = false;
	int rc;

	rc = handshake(c);
	if (rc == -EAGAIN)
		return 0;
	if (rc < 0)
		return rc;
	for (;;) {
		rc = vrio_rbuf_deliver(&c->rx, vc, cb, arg, budget - done);
		if (rc < 0)
			return rc;
		done += (unsigned)rc;
		if (done == budget)
			break;
		/* Decrypt what cin holds; once it is dry, one recv() per
		 * poll, as tcp.c: then neither SSL nor we hold a whole
		 * frame, and the owner may sleep on the socket. */
		rc = vrio_rbuf_fill(&c->rx, vc, tls_read, c);
		if (rc < 0)
			return rc;
		if (rc > 0)
			continue;
		if (pulled)
			break;
		rc = net_pull(c);
		if (rc < 0)
			return rc;
		pulled = true;
		if (rc == 0 && !c->eof)
			break;
	}
	return (int)done;
}

static int tls_sleep_prepare(struct vrio_conn *vc)
{
	struct tls_conn *c = to_tls(vc);

	return c->up && (SSL_has_pending(c->ssl) || c->cin_head < c->cin_tail);
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
	vrio_rbuf_fini(&c->rx);
	vrio_sbuf_fini(&c->tx);
	free(c->cin);
	vrio_sbuf_fini(&c->cout);
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
