/*
 * block/byteorder.h: loads and stores of little- and big-endian integers
 * at any alignment, for the format drivers that parse on-disk headers and
 * tables (VDI, VHD, VMDK, VHDX).  memcpy-based so that a table read from
 * an odd offset never faults and the compiler still emits a single load.
 */
#ifndef EXPORTD_BLOCK_BYTEORDER_H
#define EXPORTD_BLOCK_BYTEORDER_H

#include <stdint.h>
#include <string.h>

static inline uint16_t ld_le16(const void *p)
{
	const uint8_t *b = p;

	return (uint16_t)(b[0] | b[1] << 8);
}

static inline uint32_t ld_le32(const void *p)
{
	const uint8_t *b = p;

	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

static inline uint64_t ld_le64(const void *p)
{
	return (uint64_t)ld_le32((const uint8_t *)p + 4) << 32 | ld_le32(p);
}

static inline void st_le16(void *p, uint16_t v)
{
	uint8_t *b = p;

	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}

static inline void st_le32(void *p, uint32_t v)
{
	uint8_t *b = p;

	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static inline void st_le64(void *p, uint64_t v)
{
	st_le32(p, (uint32_t)v);
	st_le32((uint8_t *)p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t ld_be16(const void *p)
{
	const uint8_t *b = p;

	return (uint16_t)(b[0] << 8 | b[1]);
}

static inline uint32_t ld_be32(const void *p)
{
	const uint8_t *b = p;

	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 |
	       (uint32_t)b[3];
}

static inline uint64_t ld_be64(const void *p)
{
	return (uint64_t)ld_be32(p) << 32 | ld_be32((const uint8_t *)p + 4);
}

static inline void st_be16(void *p, uint16_t v)
{
	uint8_t *b = p;

	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}

static inline void st_be32(void *p, uint32_t v)
{
	uint8_t *b = p;

	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (24 - 8 * i));
}

static inline void st_be64(void *p, uint64_t v)
{
	st_be32(p, (uint32_t)(v >> 32));
	st_be32((uint8_t *)p + 4, (uint32_t)v);
}

#endif
