/*
 * test-block-raw.c: the raw driver (windows over a child, inline and
 * referenced children) and the node registry around it: names, duplicates,
 * implicit nodes, blockdev-del refusals, query-named-block-nodes.
 */
#include "config.h"

#include "unit.h"
#include "block-helpers.h"

#define MiB (1024 * 1024)

static int count_nodes(void)
{
	json_t *list = block_query_named_nodes();
	int n = (int)json_array_size(list);

	json_decref(list);
	return n;
}

static void test_names(void)
{
	char *img = test_image("names.img", 65536);
	struct error *err = NULL;

	CHECK_EQ(test_add(&err, "{\"driver\":\"file\",\"filename\":\"%s\"}", img), -1);
	CHECK(test_err_is(err, "'node-name' must be specified for the root node"));
	error_free(err);
	err = NULL;
	CHECK_EQ(test_add(&err, "{\"driver\":\"file\",\"node-name\":\"1x\","
			  "\"filename\":\"%s\"}", img), -1);
	CHECK(test_err_is(err, "Invalid node-name: '1x'"));
	error_free(err);
	err = NULL;
	CHECK_EQ(test_add(&err, "{\"driver\":\"file\",\"node-name\":\"a b\","
			  "\"filename\":\"%s\"}", img), -1);
	CHECK(test_err_is(err, "Invalid node-name: 'a b'"));
	error_free(err);
	err = NULL;
	CHECK(block_node_name_wellformed("a-b.c_9"));
	CHECK(!block_node_name_wellformed(""));
	CHECK(!block_node_name_wellformed("#block1"));

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"%s\"}", img);
	CHECK_EQ(test_add(&err, "{\"driver\":\"file\",\"node-name\":\"f\","
			  "\"filename\":\"%s\"}", img), -1);
	CHECK(test_err_is(err, "Duplicate nodes with node-name='f'"));
	error_free(err);
	err = NULL;
	/* An inline child cannot steal a name either. */
	CHECK_EQ(test_add(&err, "{\"driver\":\"raw\",\"node-name\":\"r\",\"file\":"
			  "{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"%s\"}}",
			  img), -1);
	CHECK(test_err_is(err, "Duplicate nodes with node-name='f'"));
	error_free(err);
	err = NULL;
	CHECK(block_node_find("r") == NULL);
	CHECK_EQ(test_add(&err, "{\"driver\":\"file\",\"node-name\":\"g\","
			  "\"filename\":\"%s\",\"force-share\":true}", img), -1);
	CHECK(test_err_is(err, "force-share=on can only be used with read-only images"));
	error_free(err);
	test_del("f");
	CHECK_EQ(count_nodes(), 0);
	free(img);
}

static void test_window(void)
{
	char *img = test_image("win.img", MiB);
	struct block_node *r, *f;
	unsigned char buf[16384];
	struct block_passthrough pt = { .writes = false };
	const char *why = NULL;
	uint64_t pnum;

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"%s\"}", img);
	ADD_OK("{\"driver\":\"raw\",\"node-name\":\"r\",\"file\":\"f\","
	       "\"offset\":4096,\"size\":8192}");
	r = node("r");
	f = node("f");
	CHECK(r->file == f);
	CHECK_EQ(f->refcnt, 1);
	CHECK_EQ(block_node_length(r), 8192);
	CHECK_EQ(block_node_pread(r, buf, 8192, 0), 0);
	CHECK(buf_is_pattern(buf, 8192, 4096));
	CHECK_EQ(block_node_pread(r, buf, 100, 8092), 0);
	CHECK(buf_is_pattern(buf, 100, 4096 + 8092));
	CHECK_EQ(block_node_pread(r, buf, 100, 8092 + 1), -EINVAL);
	memset(buf, 0xee, 512);
	CHECK_EQ(block_node_pwrite(r, buf, 512, 8192 - 512), 0);
	CHECK_EQ(block_node_pread(f, buf, 1024, 4096 + 8192 - 512), 0);
	CHECK(buf[0] == 0xee && buf[511] == 0xee);
	CHECK(buf_is_pattern(buf + 512, 512, 4096 + 8192));
	CHECK_EQ(block_node_pwrite(r, buf, 512, 8192 - 511), -EINVAL);
	/* A window cannot be resized nor passed through. */
	CHECK_EQ(block_node_truncate(r, 4096), -ENOTSUP);
	CHECK_EQ(block_node_get_passthrough(r, &pt, &why), -ENOTSUP);
	CHECK(why != NULL);
	{
		struct error *err = NULL;

		CHECK_EQ(block_perm_acquire(r, true, true, &err), -1);
		CHECK(test_err_has(err, "cannot be resized"));
		error_free(err);
	}
	CHECK(block_node_block_status(r, 0, 8192, &pnum) & BLOCK_STATUS_DATA);
	CHECK_EQ(pnum, 8192);
	test_del("r");
	CHECK_EQ(f->refcnt, 0);

	/* Offset only: the window runs to the end and follows the file. */
	ADD_OK("{\"driver\":\"raw\",\"node-name\":\"o\",\"file\":\"f\",\"offset\":1000}");
	CHECK_EQ(block_node_length(node("o")), MiB - 1000);
	CHECK_EQ(block_node_pread(node("o"), buf, 10, MiB - 1010), 0);
	CHECK(buf_is_pattern(buf, 10, MiB - 10));
	CHECK_EQ(block_node_truncate(f, 2 * MiB), 0);
	CHECK_EQ(block_node_length(node("o")), 2 * MiB - 1000);
	test_del("o");

	/* The whole file: a filter that resizes and passes through. */
	ADD_OK("{\"driver\":\"raw\",\"node-name\":\"w\",\"file\":\"f\","
	       "\"offset\":0,\"size\":%d}", 2 * MiB);
	CHECK_EQ(block_node_get_passthrough(node("w"), &pt, &why), 0);
	CHECK(pt.offset == 0 && pt.fd >= 0);
	test_del("w");
	ADD_OK("{\"driver\":\"raw\",\"node-name\":\"w\",\"file\":\"f\"}");
	CHECK_EQ(block_node_truncate(node("w"), 3 * MiB), 0);
	CHECK_EQ(block_node_length(f), 3 * MiB);
	CHECK_EQ(block_node_length(node("w")), 3 * MiB);
	test_del("w");
	test_del("f");
	free(img);
}

static void test_window_errors(void)
{
	char *img = test_image("winerr.img", MiB);
	struct error *err = NULL;

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"%s\"}", img);
	CHECK_EQ(test_add(&err, "{\"driver\":\"raw\",\"node-name\":\"r\",\"file\":\"f\","
			  "\"offset\":512,\"size\":%d}", MiB), -1);
	CHECK(test_err_is(err, "The sum of offset (512) and size (1048576) has to be "
			  "smaller or equal to the  actual size of the containing "
			  "file (1048576)"));
	error_free(err);
	err = NULL;
	CHECK_EQ(test_add(&err, "{\"driver\":\"raw\",\"node-name\":\"r\",\"file\":\"f\","
			  "\"offset\":%d}", MiB + 1), -1);
	CHECK(test_err_is(err, "Offset (1048577) cannot be greater than size of the "
			  "containing file (1048576)"));
	error_free(err);
	err = NULL;
	CHECK_EQ(test_add(&err, "{\"driver\":\"raw\",\"node-name\":\"r\",\"file\":\"f\","
			  "\"size\":1000}"), -1);
	CHECK(test_err_is(err, "Specified size is not multiple of 512"));
	error_free(err);
	err = NULL;
	CHECK_EQ(test_add(&err, "{\"driver\":\"raw\",\"node-name\":\"r\",\"file\":\"f\","
			  "\"offset\":-1}"), -1);
	CHECK(test_err_is(err, "Parameter 'offset' expects a non-negative number "
			  "below 2^64"));
	error_free(err);
	err = NULL;
	/* Overflowing offset + size. */
	CHECK_EQ(test_add(&err, "{\"driver\":\"raw\",\"node-name\":\"r\",\"file\":\"f\","
			  "\"offset\":512,\"size\":9223372036854775296}"), -1);
	CHECK(test_err_has(err, "has to be smaller or equal"));
	error_free(err);
	err = NULL;
	CHECK_EQ(test_add(&err, "{\"driver\":\"raw\",\"node-name\":\"r\",\"file\":\"zz\"}"),
		 -1);
	CHECK(test_err_is(err, "Cannot find device='zz' nor node-name='zz'"));
	error_free(err);
	/* No failed attempt left a reference or a node behind. */
	CHECK_EQ(node("f")->refcnt, 0);
	CHECK_EQ(count_nodes(), 1);
	test_del("f");
	free(img);
}

static void test_inline_child(void)
{
	char *img = test_image("inline.img", 65536);
	struct block_node *r, *child;
	struct error *err = NULL;
	json_t *list, *e;
	unsigned char buf[512];

	ADD_OK("{\"driver\":\"raw\",\"node-name\":\"r\",\"read-only\":true,"
	       "\"file\":{\"driver\":\"file\",\"filename\":\"%s\"}}", img);
	r = node("r");
	child = r->file;
	CHECK(child != NULL && child->implicit);
	CHECK(child->node_name[0] == '#' && !strncmp(child->node_name, "#block", 6));
	/* read-only propagates to the implicit child. */
	CHECK(child->read_only);
	CHECK_EQ(block_node_pwrite(child, buf, 512, 0), -EROFS);
	CHECK_EQ(block_node_pread(r, buf, 512, 512), 0);
	CHECK(buf_is_pattern(buf, 512, 512));
	/* Implicit nodes are listed, and cannot be deleted by name. */
	list = block_query_named_nodes();
	CHECK_EQ(json_array_size(list), 2);
	e = json_array_get(list, 0);
	CHECK_STREQ(json_string_value(json_object_get(e, "node-name")), "r");
	CHECK_STREQ(json_string_value(json_object_get(e, "drv")), "raw");
	CHECK(json_is_true(json_object_get(e, "ro")));
	CHECK_STREQ(json_string_value(json_object_get(e, "file")), img);
	e = json_array_get(list, 1);
	CHECK_STREQ(json_string_value(json_object_get(e, "node-name")), child->node_name);
	CHECK_STREQ(json_string_value(json_object_get(e, "drv")), "file");
	json_decref(list);
	CHECK_EQ(blockdev_del(child->node_name, &err), -1);
	{
		char *msg = xasprintf("Node %s is not owned by the monitor",
				      child->node_name);

		CHECK(test_err_is(err, msg));
		free(msg);
	}
	error_free(err);
	err = NULL;
	/* ...and go away with their parent. */
	test_del("r");
	CHECK_EQ(count_nodes(), 0);

	/* Writable parent: the child is writable; explicit child options win. */
	ADD_OK("{\"driver\":\"raw\",\"node-name\":\"r\",\"file\":{\"driver\":\"file\","
	       "\"node-name\":\"kid\",\"filename\":\"%s\",\"read-only\":true}}", img);
	CHECK(node("kid")->read_only && node("kid")->implicit);
	CHECK(!node("r")->read_only);
	CHECK_EQ(block_perm_acquire(node("r"), true, false, &err), -1);
	CHECK(test_err_is(err, "Block node 'kid' is read-only"));
	error_free(err);
	err = NULL;
	CHECK(TAILQ_FIRST(&node("r")->users) == NULL);
	test_del("r");
	CHECK(block_node_find("kid") == NULL);
	free(img);
}

static void test_del_in_use(void)
{
	char *img = test_image("inuse.img", 65536);
	struct error *err = NULL;
	struct block_node *r;

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"%s\"}", img);
	ADD_OK("{\"driver\":\"raw\",\"node-name\":\"r\",\"file\":\"f\"}");
	CHECK_EQ(blockdev_del("nope", &err), -1);
	CHECK(test_err_is(err, "Failed to find node with node-name='nope'"));
	error_free(err);
	err = NULL;
	CHECK_EQ(blockdev_del("f", &err), -1);
	CHECK(test_err_is(err, "Node 'f' is in use by node 'r' (as its file)"));
	error_free(err);
	err = NULL;
	r = node("r");
	CHECK_EQ(block_perm_acquire_as(r, "export 'e1'", true, false, &err), 0);
	CHECK_EQ(r->write_users, 1);
	CHECK_EQ(blockdev_del("r", &err), -1);
	CHECK(test_err_is(err, "Node 'r' is in use by export 'e1'"));
	error_free(err);
	err = NULL;
	/* Two exports of one node do not conflict with each other. */
	CHECK_EQ(block_perm_acquire_as(r, "export 'e2'", true, true, &err), 0);
	block_perm_release(r, true, true);
	block_perm_release(r, true, false);
	CHECK_EQ(r->write_users, 0);
	test_del("r");
	test_del("f");
	CHECK_EQ(count_nodes(), 0);
	free(img);
}

/* A windowed raw node does not share resize: a growable user of f conflicts. */
static void test_perm_conflict(void)
{
	char *img = test_image("conflict.img", MiB);
	struct error *err = NULL;
	struct block_node *f;

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"%s\"}", img);
	ADD_OK("{\"driver\":\"raw\",\"node-name\":\"r\",\"file\":\"f\",\"size\":4096}");
	f = node("f");
	CHECK_EQ(block_perm_acquire_as(node("r"), "export 'er'", false, false, &err), 0);
	CHECK_EQ(block_perm_acquire_as(f, "export 'ef'", true, true, &err), -1);
	CHECK(test_err_is(err, "Permission conflict on node 'f': permissions 'resize' "
			  "are both required by export 'ef' and unshared by node 'r' "
			  "(uses node 'f' as 'file' child)"));
	error_free(err);
	err = NULL;
	/* Nothing changed by the failure. */
	CHECK_EQ(f->perm, BLOCK_PERM_CONSISTENT_READ);
	CHECK_EQ(f->write_users, 0);
	CHECK_EQ(block_perm_acquire_as(f, "export 'ef'", true, false, &err), 0);
	block_perm_release(f, true, false);
	block_perm_release(node("r"), false, false);
	CHECK_EQ(f->perm, 0);
	/* The window itself still keeps others from resizing f... */
	CHECK_EQ(f->shared, BLOCK_PERM_ALL & ~BLOCK_PERM_RESIZE);
	test_del("r");
	/* ...until it is gone. */
	CHECK_EQ(f->shared, BLOCK_PERM_ALL);
	test_del("f");
	free(img);
}

static void test_query_shape(void)
{
	char *img = test_image("query.img", 65536);
	json_t *list, *e, *image, *cache;
	static const char *const zero[] = {
		"bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr",
		"write_threshold", "backing_file_depth",
	};

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"%s\","
	       "\"cache\":{\"direct\":false,\"no-flush\":true}}", img);
	list = block_query_named_nodes();
	CHECK_EQ(json_array_size(list), 1);
	e = json_array_get(list, 0);
	CHECK_STREQ(json_string_value(json_object_get(e, "file")), img);
	CHECK_STREQ(json_string_value(json_object_get(e, "node-name")), "f");
	CHECK(json_is_false(json_object_get(e, "ro")));
	CHECK_STREQ(json_string_value(json_object_get(e, "drv")), "file");
	CHECK(json_is_false(json_object_get(e, "encrypted")));
	CHECK_STREQ(json_string_value(json_object_get(e, "detect_zeroes")), "off");
	for (size_t i = 0; i < ARRAY_SIZE(zero); i++)
		CHECK(json_integer_value(json_object_get(e, zero[i])) == 0 &&
		      json_is_integer(json_object_get(e, zero[i])));
	image = json_object_get(e, "image");
	CHECK_STREQ(json_string_value(json_object_get(image, "filename")), img);
	CHECK_STREQ(json_string_value(json_object_get(image, "format")), "file");
	CHECK_EQ(json_integer_value(json_object_get(image, "virtual-size")), 65536);
	CHECK(json_integer_value(json_object_get(image, "actual-size")) >= 65536);
	cache = json_object_get(e, "cache");
	CHECK(json_is_true(json_object_get(cache, "writeback")));
	CHECK(json_is_false(json_object_get(cache, "direct")));
	CHECK(json_is_true(json_object_get(cache, "no-flush")));
	json_decref(list);
	test_del("f");
	free(img);
}

static void test_close_all(void)
{
	char *img = test_image("all.img", 65536);

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"f\",\"filename\":\"%s\"}", img);
	ADD_OK("{\"driver\":\"raw\",\"node-name\":\"r1\",\"file\":\"f\"}");
	ADD_OK("{\"driver\":\"raw\",\"node-name\":\"r2\",\"file\":"
	       "{\"driver\":\"raw\",\"file\":\"f\"}}");
	CHECK_EQ(count_nodes(), 4);
	block_close_all();
	CHECK_EQ(count_nodes(), 0);
	free(img);
}

static const struct unit_test tests[] = {
	{ "node names and duplicates", test_names },
	{ "raw window arithmetic", test_window },
	{ "raw window errors", test_window_errors },
	{ "inline children are implicit", test_inline_child },
	{ "blockdev-del refusals", test_del_in_use },
	{ "permission conflicts", test_perm_conflict },
	{ "query-named-block-nodes shape", test_query_shape },
	{ "close all", test_close_all },
	{ NULL, NULL },
};

int main(void)
{
	int ret;

	test_dir_create();
	ret = unit_run("block-raw", tests);
	block_close_all();
	test_dir_remove();
	return ret;
}
