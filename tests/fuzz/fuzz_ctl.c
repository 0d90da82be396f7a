/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What a client feeds a daemon's control socket: arbitrary bytes, through
 * the socket-free core (struct vrio_ctl_conn) that the socket layer drives,
 * against a server with a few dummy methods and the built-in
 * rpc_get_methods.
 *
 * The input is one byte of chunking, then the stream. The chunking byte c
 * cuts the stream into feeds: 0 feeds it whole; otherwise each feed is
 * 1..c bytes long, the lengths drawn from a generator seeded by c. So a
 * seed is readable text after its first byte ('\n' = chunks of up to 10).
 * After each feed the harness reads the output, as a client would.
 *
 * Properties: no crash, UB or leak. The output is whole lines only, each
 * one JSON-RPC 2.0 answer: an object with "jsonrpc":"2.0", an id (string,
 * number or null) and either a result or an error with an integer code and
 * a string message. Once a feed reports the client is to be closed, the
 * server says nothing more, and a parse error or a too large request is
 * the last answer.
 */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "ctl.h"
#include "fuzz_input.h"
#include "log.h"

static struct vrio_ctl *fuzz_srv;

static void m_echo(void *arg, struct vrio_ctl_req *r, const json_t *params)
{
	vrio_ctl_reply(r, params ? json_deep_copy(params) : json_null());
}

static void m_fail(void *arg, struct vrio_ctl_req *r, const json_t *params)
{
	if (json_is_object(params))
		vrio_ctl_error_data(r, json_deep_copy(params));
	vrio_ctl_error(r, VRIO_CTL_EFAILED, "%s: failed as asked", vrio_ctl_req_method(r));
}

/* The sum of an array of numbers; INVALID_PARAMS otherwise. */
static void m_sum(void *arg, struct vrio_ctl_req *r, const json_t *params)
{
	double sum = 0;
	json_t *v;
	size_t i;

	if (!json_is_array(params)) {
		vrio_ctl_error(r, VRIO_CTL_INVALID_PARAMS, "params must be an array");
		return;
	}
	json_array_foreach(params, i, v) {
		if (!json_is_number(v)) {
			vrio_ctl_error(r, VRIO_CTL_INVALID_PARAMS, "element %zu: not a number", i);
			return;
		}
		sum += json_number_value(v);
	}
	vrio_ctl_reply(r, json_pack("{s:f, s:i}", "sum", sum, "n", (int)json_array_size(params)));
}

static const struct vrio_ctl_method fuzz_methods[] = {
	{ "echo", m_echo, "params back" },
	{ "fail", m_fail, "an application error, with params as data" },
	{ "sum", m_sum, "the sum of an array of numbers" },
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	vrio_log_init("fuzz_ctl", VRIO_LOG_ERR);
	if (vrio_ctl_create(fuzz_methods, sizeof(fuzz_methods) / sizeof(fuzz_methods[0]), NULL,
			    &fuzz_srv) != 0)
		abort();
	return 0;
}

static bool code_known(json_int_t code)
{
	return code == VRIO_CTL_PARSE_ERROR || code == VRIO_CTL_INVALID_REQUEST ||
	       code == VRIO_CTL_METHOD_NOT_FOUND || code == VRIO_CTL_INVALID_PARAMS ||
	       code == VRIO_CTL_INTERNAL_ERROR || code == VRIO_CTL_EFAILED;
}

/* One answer line; returns its error code, or 0 for a result. */
static json_int_t check_answer(const char *line, size_t len)
{
	json_t *a, *id, *err, *code;
	json_error_t je;
	json_int_t c = 0;

	a = json_loadb(line, len, 0, &je);
	FUZZ_CHECK(a != NULL, "answer is not JSON (%s): '%.*s'", je.text, (int)len, line);
	FUZZ_CHECK(json_is_object(a), "answer is not an object: '%.*s'", (int)len, line);
	FUZZ_CHECK(json_is_string(json_object_get(a, "jsonrpc")) &&
		   !strcmp(json_string_value(json_object_get(a, "jsonrpc")), "2.0"),
		   "no jsonrpc 2.0: '%.*s'", (int)len, line);
	id = json_object_get(a, "id");
	FUZZ_CHECK(json_is_string(id) || json_is_number(id) || json_is_null(id),
		   "bad id: '%.*s'", (int)len, line);
	err = json_object_get(a, "error");
	FUZZ_CHECK(!err != !json_object_get(a, "result"), "not one of result and error: '%.*s'",
		   (int)len, line);
	FUZZ_CHECK(json_object_size(a) == 3, "extra members: '%.*s'", (int)len, line);
	if (err) {
		code = json_object_get(err, "code");
		FUZZ_CHECK(json_is_integer(code) && code_known(json_integer_value(code)),
			   "bad code: '%.*s'", (int)len, line);
		FUZZ_CHECK(json_is_string(json_object_get(err, "message")),
			   "no message: '%.*s'", (int)len, line);
		c = json_integer_value(code);
	}
	json_decref(a);
	return c;
}

/* Reads and checks all output; returns the last line's code (0: none or a result). */
static json_int_t drain(struct vrio_ctl_conn *conn)
{
	json_int_t last = 0;
	const char *p, *nl;
	size_t len;

	p = vrio_ctl_conn_output(conn, &len);
	FUZZ_CHECK(len == 0 || p[len - 1] == '\n', "output ends in a partial line");
	for (size_t off = 0; off < len; off = (size_t)(nl - p) + 1) {
		nl = memchr(p + off, '\n', len - off);
		last = check_answer(p + off, (size_t)(nl - p) - off);
	}
	vrio_ctl_conn_consume(conn, len);
	return last;
}

static size_t next_chunk(uint32_t *rng, uint8_t step, size_t left)
{
	size_t n;

	if (step == 0)
		return left;
	*rng ^= *rng << 13;
	*rng ^= *rng >> 17;
	*rng ^= *rng << 5;
	n = 1 + *rng % step;
	return n < left ? n : left;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	uint8_t step = fuzz_u8(&in);
	uint32_t rng = 0x9e3779b9u ^ step;
	struct vrio_ctl_conn *conn;
	int err = 0;

	conn = vrio_ctl_conn_new(fuzz_srv);
	FUZZ_CHECK(conn != NULL, "out of memory");
	while (fuzz_left(&in) > 0) {
		size_t n = next_chunk(&rng, step, fuzz_left(&in));
		json_int_t last;
		int ret;

		ret = vrio_ctl_conn_feed(conn, in.p, n);
		in.p += n;
		in.n -= n;
		if (err) {
			FUZZ_CHECK(ret == err, "closing with %d, then %d", err, ret);
			vrio_ctl_conn_output(conn, &n);
			FUZZ_CHECK(n == 0, "%zu bytes of answers after closing", n);
			continue;
		}
		last = drain(conn);
		FUZZ_CHECK(ret == 0 || ret == -EBADMSG || ret == -EMSGSIZE, "feed: %d", ret);
		if (ret == -EBADMSG)
			FUZZ_CHECK(last == VRIO_CTL_PARSE_ERROR, "closed without a parse error");
		if (ret == -EMSGSIZE)
			FUZZ_CHECK(last == VRIO_CTL_INVALID_REQUEST, "closed without an error");
		if (last == VRIO_CTL_PARSE_ERROR)
			FUZZ_CHECK(ret == -EBADMSG, "a parse error, yet open (%d)", ret);
		err = ret;
	}
	vrio_ctl_conn_free(conn);
	return 0;
}
