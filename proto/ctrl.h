/* SPDX-License-Identifier: BSD-3-Clause */
/* Control messages: protobuf-c Vrio__Ctrl carried in CTRL frames. */
#ifndef VRIO_PROTO_CTRL_H
#define VRIO_PROTO_CTRL_H

#include <stddef.h>
#include <stdint.h>

#include "vrio.pb-c.h"

#define VRIO_PROTO_VERSION 1
/* Control messages are small; anything larger is a peer to drop. */
#define VRIO_CTRL_MAX_LEN 65536u

/* Pack into buf; returns the length, or -EMSGSIZE if it does not fit. */
int vrio_ctrl_pack(const Vrio__Ctrl *m, uint8_t *buf, size_t cap);
/* Unpack and check a peer's message: NULL on garbage or an empty oneof. */
Vrio__Ctrl *vrio_ctrl_unpack(const void *buf, size_t len);
void vrio_ctrl_free(Vrio__Ctrl *m);
const char *vrio_ctrl_name(const Vrio__Ctrl *m);

#endif
