/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>

#include "ctrl.h"

int vrio_ctrl_pack(const Vrio__Ctrl *m, uint8_t *buf, size_t cap)
{
	size_t n = vrio__ctrl__get_packed_size(m);

	if (n > cap || n > VRIO_CTRL_MAX_LEN)
		return -EMSGSIZE;
	return (int)vrio__ctrl__pack(m, buf);
}

Vrio__Ctrl *vrio_ctrl_unpack(const void *buf, size_t len)
{
	Vrio__Ctrl *m;

	if (len > VRIO_CTRL_MAX_LEN)
		return NULL;
	m = vrio__ctrl__unpack(NULL, len, buf);
	if (!m)
		return NULL;
	if (m->msg_case == VRIO__CTRL__MSG__NOT_SET) {
		vrio__ctrl__free_unpacked(m, NULL);
		return NULL;
	}
	return m;
}

void vrio_ctrl_free(Vrio__Ctrl *m)
{
	if (m)
		vrio__ctrl__free_unpacked(m, NULL);
}

const char *vrio_ctrl_name(const Vrio__Ctrl *m)
{
	switch (m->msg_case) {
	case VRIO__CTRL__MSG_HELLO:
		return "hello";
	case VRIO__CTRL__MSG_ATTACH:
		return "attach";
	case VRIO__CTRL__MSG_ATTACH_REPLY:
		return "attach-reply";
	case VRIO__CTRL__MSG_DETACH:
		return "detach";
	case VRIO__CTRL__MSG_DEVICE_ERROR:
		return "device-error";
	case VRIO__CTRL__MSG_HEARTBEAT:
		return "heartbeat";
	case VRIO__CTRL__MSG_ERROR:
		return "error";
	case VRIO__CTRL__MSG_IOTLB_INVALIDATE:
		return "iotlb-invalidate";
	case VRIO__CTRL__MSG_IOTLB_ACK:
		return "iotlb-ack";
	case VRIO__CTRL__MSG_AUTH:
		return "auth";
	default:
		return "unknown";
	}
}
