/*
 * test-block-lock.c: QEMU-compatible image locking.  Two nodes on one
 * image in this process conflict as two processes would (OFD locks belong
 * to the open file description); the lock bytes are QEMU's; and real
 * qemu-io / qemu-img processes are refused by exportd's writer and refuse
 * it in turn.
 */
#include "config.h"

#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "unit.h"
#include "block-helpers.h"

/* Is byte locked by someone else than a fresh open file description? */
static bool byte_locked(const char *path, off_t byte)
{
	int fd = open(path, O_RDONLY);
	struct flock fl = {
		.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1,
	};
	bool locked;

	if (fd < 0)
		return false;
	locked = fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
	close(fd);
	return locked;
}

static void test_two_nodes(void)
{
	char *img = test_image("two.img", 65536);
	struct error *err = NULL;
	char *msg;

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"a\",\"filename\":\"%s\"}", img);
	ADD_OK("{\"driver\":\"file\",\"node-name\":\"b\",\"filename\":\"%s\"}", img);
	/* Opening takes no lock (as QEMU): users do. */
	CHECK(!byte_locked(img, 100));
	CHECK_EQ(block_perm_acquire_as(node("a"), "export 'ea'", true, false, &err), 0);
	msg = xasprintf("Failed to get \"write\" lock: is another process using the "
			"image [%s]?", img);
	CHECK_EQ(block_perm_acquire_as(node("b"), "export 'eb'", true, false, &err), -1);
	CHECK(test_err_is(err, msg));
	free(msg);
	error_free(err);
	err = NULL;
	/* A reader shares writing, so it may come. */
	CHECK_EQ(block_perm_acquire(node("b"), false, false, &err), 0);
	block_perm_release(node("b"), false, false);
	/* Once a lets go, b may write. */
	block_perm_release(node("a"), true, false);
	CHECK_EQ(block_perm_acquire(node("b"), true, false, &err), 0);
	/* And now a is refused: its writer would not share b's writing. */
	CHECK_EQ(block_perm_acquire(node("a"), true, false, &err), -1);
	CHECK(test_err_has(err, "lock"));
	error_free(err);
	err = NULL;
	block_perm_release(node("b"), true, false);
	test_del("a");
	test_del("b");
	free(img);
}

static void test_reader_shares(void)
{
	char *img = test_image("reader.img", 65536);
	struct error *err = NULL;

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"a\",\"filename\":\"%s\"}", img);
	ADD_OK("{\"driver\":\"file\",\"node-name\":\"b\",\"filename\":\"%s\"}", img);
	CHECK_EQ(block_perm_acquire(node("a"), false, false, &err), 0);
	CHECK_EQ(block_perm_acquire(node("b"), true, false, &err), 0);
	/* A writer does not make readers go away. */
	block_perm_release(node("a"), false, false);
	CHECK_EQ(block_perm_acquire(node("a"), false, false, &err), 0);
	block_perm_release(node("a"), false, false);
	block_perm_release(node("b"), true, false);
	test_del("a");
	test_del("b");
	free(img);
}

static void test_lock_bytes(void)
{
	char *img = test_image("bytes.img", 65536);
	struct error *err = NULL;

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"a\",\"filename\":\"%s\"}", img);
	CHECK_EQ(block_perm_acquire(node("a"), false, false, &err), 0);
	CHECK(byte_locked(img, 100));
	CHECK(!byte_locked(img, 101));
	CHECK(!byte_locked(img, 201));
	CHECK_EQ(block_perm_acquire(node("a"), true, true, &err), 0);
	CHECK(byte_locked(img, 100));
	CHECK(byte_locked(img, 101));
	CHECK(!byte_locked(img, 102));
	CHECK(byte_locked(img, 103));
	CHECK(!byte_locked(img, 200));
	CHECK(byte_locked(img, 201));
	CHECK(!byte_locked(img, 202));
	CHECK(byte_locked(img, 203));
	/* Releasing the writer gives the bytes back; the reader's stays. */
	block_perm_release(node("a"), true, true);
	CHECK(byte_locked(img, 100));
	CHECK(!byte_locked(img, 101));
	CHECK(!byte_locked(img, 103));
	CHECK(!byte_locked(img, 201));
	CHECK(!byte_locked(img, 203));
	block_perm_release(node("a"), false, false);
	CHECK(!byte_locked(img, 100));
	test_del("a");
	free(img);
}

static void test_locking_off(void)
{
	char *img = test_image("off.img", 65536);
	struct error *err = NULL;

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"a\",\"filename\":\"%s\"}", img);
	ADD_OK("{\"driver\":\"file\",\"node-name\":\"b\",\"filename\":\"%s\","
	       "\"locking\":\"off\"}", img);
	CHECK_EQ(block_perm_acquire(node("b"), true, false, &err), 0);
	CHECK(!byte_locked(img, 101));
	CHECK_EQ(block_perm_acquire(node("a"), true, false, &err), 0);
	block_perm_release(node("a"), true, false);
	block_perm_release(node("b"), true, false);
	test_del("a");
	test_del("b");
	free(img);
}

/* Locks go through raw nodes down to the file. */
static void test_through_raw(void)
{
	char *img = test_image("raw.img", 65536);
	struct error *err = NULL;

	ADD_OK("{\"driver\":\"raw\",\"node-name\":\"r\",\"file\":{\"driver\":\"file\","
	       "\"filename\":\"%s\"}}", img);
	ADD_OK("{\"driver\":\"file\",\"node-name\":\"b\",\"filename\":\"%s\"}", img);
	CHECK_EQ(block_perm_acquire(node("r"), true, false, &err), 0);
	CHECK(byte_locked(img, 101) && byte_locked(img, 201));
	CHECK_EQ(block_perm_acquire(node("b"), true, false, &err), -1);
	CHECK(test_err_has(err, "Failed to get \"write\" lock"));
	error_free(err);
	err = NULL;
	block_perm_release(node("r"), true, false);
	CHECK(!byte_locked(img, 101));
	test_del("r");
	test_del("b");
	free(img);
}

/*
 * A format driver without child_perm (as qcow2) gets QEMU's default for
 * its file: a writable node holds write and resize and shares neither,
 * from the moment it is attached, users or not.  The format node is made
 * by hand: only the registry's built-in drivers can be blockdev-added.
 */
static const struct block_driver test_format_driver = {
	.name = "test-format",
	.is_format = true,
};

static struct block_node *test_format_node(const char *name, struct block_node *file,
					   bool read_only)
{
	struct block_node *bs = xcalloc(1, sizeof(*bs));

	bs->node_name = xstrdup(name);
	bs->drv = &test_format_driver;
	bs->read_only = read_only;
	bs->file = file;
	TAILQ_INIT(&bs->users);
	bs->shared = BLOCK_PERM_ALL;
	return bs;
}

static void test_format_node_free(struct block_node *bs)
{
	free(bs->node_name);
	free(bs);
}

static void test_format_default(void)
{
	char *img = test_image("fmt.img", 65536);
	struct error *err = NULL;
	struct block_node *q, *q2;

	ADD_OK("{\"driver\":\"file\",\"node-name\":\"a\",\"filename\":\"%s\"}", img);
	ADD_OK("{\"driver\":\"file\",\"node-name\":\"b\",\"filename\":\"%s\"}", img);
	q = test_format_node("q", node("a"), false);
	CHECK_EQ(block_perm_attach_child(q, node("a"), "file", &err), 0);
	/* The same bytes as qemu-storage-daemon with a writable qcow2 node. */
	CHECK(byte_locked(img, 100) && byte_locked(img, 101) && byte_locked(img, 103));
	CHECK(byte_locked(img, 201) && byte_locked(img, 203));
	CHECK(!byte_locked(img, 200));
	/* A second reader of the format is refused: its metadata would move. */
	q2 = test_format_node("q2", node("b"), true);
	CHECK_EQ(block_perm_attach_child(q2, node("b"), "file", &err), -1);
	CHECK(test_err_has(err, "Failed to get shared \"write\" lock"));
	error_free(err);
	err = NULL;
	block_perm_detach_child(q, node("a"));
	CHECK(!byte_locked(img, 100) && !byte_locked(img, 201));
	/* A read-only format node still keeps writers out. */
	CHECK_EQ(block_perm_attach_child(q2, node("b"), "file", &err), 0);
	CHECK(byte_locked(img, 100) && !byte_locked(img, 101));
	CHECK(byte_locked(img, 201) && byte_locked(img, 203));
	CHECK_EQ(block_perm_acquire(node("a"), true, false, &err), -1);
	CHECK(test_err_has(err, "Failed to get \"write\" lock"));
	error_free(err);
	block_perm_detach_child(q2, node("b"));
	test_format_node_free(q);
	test_format_node_free(q2);
	test_del("a");
	test_del("b");
	free(img);
}

/* ---- against real QEMU tools ---- */

static bool have_tool(const char *tool)
{
	char *cmd = xasprintf("command -v %s >/dev/null 2>&1", tool);
	int ret = system(cmd);

	free(cmd);
	return ret == 0;
}

/* Run a shell command; its exit status, stderr+stdout into *out. */
static int run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(char **out, const char *fmt, ...)
{
	va_list ap;
	char *cmd, *full, *log = test_path("cmd.log");
	char buf[4096] = "";
	FILE *f;
	int status;

	va_start(ap, fmt);
	cmd = xvasprintf(fmt, ap);
	va_end(ap);
	full = xasprintf("%s >'%s' 2>&1", cmd, log);
	status = system(full);
	f = fopen(log, "r");
	if (f) {
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);

		buf[n] = '\0';
		fclose(f);
	}
	*out = xstrdup(buf);
	free(cmd);
	free(full);
	free(log);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_qemu_io_refused(void)
{
	char *img = test_image("qio.img", 65536);
	struct error *err = NULL;
	char *out;

	if (!have_tool("qemu-io")) {
		printf("SKIP qemu-io tests: qemu-io is not installed\n");
		free(img);
		return;
	}
	ADD_OK("{\"driver\":\"file\",\"node-name\":\"a\",\"filename\":\"%s\"}", img);
	CHECK_EQ(block_perm_acquire(node("a"), true, false, &err), 0);
	/* A writing qemu-io is refused... */
	CHECK(run(&out, "qemu-io -f raw -c 'write -P 0x55 0 512' '%s'", img) != 0);
	CHECK(strstr(out, "Failed to get \"write\" lock") != NULL);
	free(out);
	/* ...a reading one is not... */
	CHECK_EQ(run(&out, "qemu-io -r -f raw -c 'read 0 512' '%s'", img), 0);
	free(out);
	CHECK_EQ(run(&out, "qemu-img info -f raw '%s'", img), 0);
	free(out);
	/* ...nor is one resizing. */
	CHECK(run(&out, "qemu-img resize -f raw '%s' 1M", img) != 0);
	CHECK(strstr(out, "lock") != NULL);
	free(out);
	/* Without our writer, qemu-io writes. */
	block_perm_release(node("a"), true, false);
	CHECK_EQ(block_perm_acquire(node("a"), false, false, &err), 0);
	CHECK_EQ(run(&out, "qemu-io -f raw -c 'write -P 0x55 0 512' '%s'", img), 0);
	free(out);
	block_perm_release(node("a"), false, false);
	test_del("a");
	free(img);
}

/* A qemu-io that keeps the image open for writing until its stdin closes. */
static FILE *qemu_io_hold(const char *img)
{
	char *cmd = xasprintf("exec qemu-io -f raw '%s' >/dev/null 2>&1", img);
	FILE *p = popen(cmd, "w");
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	free(cmd);
	for (int i = 0; p && i < 250 && !byte_locked(img, 101); i++)
		nanosleep(&ts, NULL);
	return p;
}

static void test_qemu_io_holds(void)
{
	char *img = test_image("qhold.img", 65536);
	struct error *err = NULL;
	FILE *qio;
	char *msg;

	if (!have_tool("qemu-io")) {
		printf("SKIP qemu-io tests: qemu-io is not installed\n");
		free(img);
		return;
	}
	ADD_OK("{\"driver\":\"file\",\"node-name\":\"a\",\"filename\":\"%s\"}", img);
	qio = qemu_io_hold(img);
	CHECK(qio != NULL && byte_locked(img, 101));
	msg = xasprintf("Failed to get shared \"write\" lock: is another process "
			"using the image [%s]?", img);
	CHECK_EQ(block_perm_acquire(node("a"), true, false, &err), -1);
	CHECK(test_err_is(err, msg));
	free(msg);
	error_free(err);
	err = NULL;
	/* Nothing of ours is left locked after the refusal. */
	CHECK(!byte_locked(img, 201));
	/* Reading alongside a writing qemu is fine (it shares reading). */
	CHECK_EQ(block_perm_acquire(node("a"), false, false, &err), 0);
	block_perm_release(node("a"), false, false);
	if (qio)
		pclose(qio);
	CHECK(!byte_locked(img, 101));
	CHECK_EQ(block_perm_acquire(node("a"), true, false, &err), 0);
	block_perm_release(node("a"), true, false);
	test_del("a");
	free(img);
}

static const struct unit_test tests[] = {
	{ "two nodes on one image", test_two_nodes },
	{ "readers share writing", test_reader_shares },
	{ "QEMU's lock bytes", test_lock_bytes },
	{ "locking=off", test_locking_off },
	{ "locks through a raw node", test_through_raw },
	{ "format nodes lock their file as QEMU", test_format_default },
	{ "qemu-io and qemu-img are refused", test_qemu_io_refused },
	{ "a writing qemu-io refuses us", test_qemu_io_holds },
	{ NULL, NULL },
};

int main(void)
{
	int ret;

	signal(SIGPIPE, SIG_IGN);
	test_dir_create();
	ret = unit_run("block-lock", tests);
	block_close_all();
	test_dir_remove();
	return ret;
}
