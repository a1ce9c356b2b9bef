/*
 * test-fuse-mountpoint.c: canonical mountpoints, and the promise that a
 * path we serve is never looked at (ours() is asked first, and a "served"
 * path that does not even exist must still be recognised).
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuse/mountpoint.h"
#include "unit.h"
#include "util.h"

static char root[256];

static void setup(void)
{
	char *cmd;

	snprintf(root, sizeof(root), "/tmp/test-fuse-mp.XXXXXX");
	if (!mkdtemp(root))
		abort();
	cmd = xasprintf("cd %s && mkdir -p a/b && touch a/b/file && ln -s b a/rel && "
			"ln -s %s/a/b/file abs && ln -s loop loop && ln -s a/b/file lfile",
			root, root);
	if (system(cmd) != 0)
		abort();
	free(cmd);
}

static void teardown(void)
{
	char *cmd = xasprintf("rm -rf %s", root);

	if (system(cmd) != 0)
		abort();
	free(cmd);
}

static char *resolve(const char *path, bool *ours, char **msg)
{
	struct stat st;
	struct error *err = NULL;
	int fd;
	char *r = fuse_mountpoint_resolve(path, NULL, NULL, ours, &st, &fd, NULL, &err);

	if (fd >= 0)
		close(fd);
	*msg = err ? xstrdup(err->msg) : NULL;
	error_free(err);
	return r;
}

static void check_resolves(const char *path, const char *want_rel)
{
	char *want = xasprintf("%s/%s", root, want_rel), *msg;
	bool ours;
	char *got = resolve(path, &ours, &msg);

	CHECK_STREQ(got, want);
	if (!got || strcmp(got, want))
		fprintf(stderr, "    %s -> %s (%s), want %s\n", path, got, msg, want);
	free(got);
	free(want);
	free(msg);
}

static void test_absolute_and_relative(void)
{
	char *p = xasprintf("%s/a/b/file", root), *q;

	check_resolves(p, "a/b/file");
	free(p);
	if (chdir(root) < 0)
		abort();
	check_resolves("a/b/file", "a/b/file");
	check_resolves("./a//b/./file", "a/b/file");
	check_resolves("a/b/../b/file", "a/b/file");
	q = xasprintf("../%s/a/b/file", strrchr(root, '/') + 1);
	check_resolves(q, "a/b/file");
	free(q);
	if (chdir("/") < 0)
		abort();
}

static void test_symlinks(void)
{
	char *p;

	p = xasprintf("%s/a/rel/file", root);
	check_resolves(p, "a/b/file");
	free(p);
	p = xasprintf("%s/abs", root);
	check_resolves(p, "a/b/file");
	free(p);
	p = xasprintf("%s/lfile", root);
	check_resolves(p, "a/b/file");
	free(p);
	/* ".." after a symlink goes up from the target, as the kernel does. */
	p = xasprintf("%s/a/rel/../b/file", root);
	check_resolves(p, "a/b/file");
	free(p);
}

static void test_errors(void)
{
	char *p, *msg, *want;
	bool ours;

	p = xasprintf("%s/missing", root);
	CHECK(resolve(p, &ours, &msg) == NULL);
	want = xasprintf("Failed to stat '%s': No such file or directory", p);
	CHECK_STREQ(msg, want);
	free(want);
	free(msg);
	free(p);

	p = xasprintf("%s/a/b/file/x", root);
	CHECK(resolve(p, &ours, &msg) == NULL);
	CHECK(msg && strstr(msg, "Not a directory"));
	free(msg);
	free(p);

	p = xasprintf("%s/a/b/file/", root);
	CHECK(resolve(p, &ours, &msg) == NULL);
	CHECK(msg && strstr(msg, "Not a directory"));
	free(msg);
	free(p);

	p = xasprintf("%s/loop", root);
	CHECK(resolve(p, &ours, &msg) == NULL);
	CHECK(msg && strstr(msg, "Too many levels of symbolic links"));
	free(msg);
	free(p);

	CHECK(resolve("", &ours, &msg) == NULL);
	CHECK_STREQ(msg, "Failed to stat '': No such file or directory");
	free(msg);
}

/* Our "mount" is a path that does not exist: lstat() on it would fail. */
static const char *served;
static int ours_calls;

static bool is_served(const char *canon, void *opaque)
{
	(void)opaque;
	ours_calls++;
	return !strcmp(canon, served);
}

static void test_ours_never_stat(void)
{
	char *s = xasprintf("%s/a/b/served", root), *p;
	struct stat st;
	struct error *err = NULL;
	bool ours = false;
	int fd;
	char *r;

	served = s;
	p = xasprintf("%s/a/rel/../rel/served", root);
	r = fuse_mountpoint_resolve(p, is_served, NULL, &ours, &st, &fd, NULL, &err);
	CHECK_STREQ(r, s);
	CHECK(ours);
	CHECK(err == NULL);
	CHECK(ours_calls > 0);
	CHECK(fd == -1);
	free(r);
	free(p);

	/* Something below a served file: ENOTDIR without looking. */
	p = xasprintf("%s/a/b/served/x", root);
	r = fuse_mountpoint_resolve(p, is_served, NULL, &ours, &st, &fd, NULL, &err);
	CHECK(r == NULL);
	CHECK(err && strstr(err->msg, "Not a directory"));
	error_free(err);
	free(p);
	free(s);
}

static void test_regular_stat(void)
{
	char *p = xasprintf("%s/a", root);
	struct stat st;
	bool ours;
	int fd;
	char *r = fuse_mountpoint_resolve(p, NULL, NULL, &ours, &st, &fd, NULL, NULL);

	CHECK(r != NULL);
	CHECK(!ours);
	CHECK(S_ISDIR(st.st_mode));
	CHECK(fd >= 0);
	close(fd);
	free(r);
	free(p);
	r = fuse_mountpoint_resolve("/", NULL, NULL, &ours, &st, &fd, NULL, NULL);
	CHECK_STREQ(r, "/");
	close(fd);
	free(r);
	r = fuse_mountpoint_resolve("/..", NULL, NULL, &ours, &st, &fd, NULL, NULL);
	CHECK_STREQ(r, "/");
	close(fd);
	free(r);
}

/* The fd names the file checked, whatever the path names afterwards. */
static void test_fd_is_the_file_checked(void)
{
	char *p = xasprintf("%s/swap", root), *other = xasprintf("%s/a/b/file", root);
	struct stat st, fst, ost;
	bool ours;
	int fd, dirfd;
	char *r;

	CHECK(close(creat(p, 0644)) == 0);
	r = fuse_mountpoint_resolve(p, NULL, NULL, &ours, &st, &fd, &dirfd, NULL);
	CHECK_STREQ(r, p);
	CHECK(fd >= 0 && dirfd >= 0);
	CHECK(unlink(p) == 0 && symlink(other, p) == 0);
	CHECK(fstat(fd, &fst) == 0 && stat(other, &ost) == 0);
	CHECK(fst.st_ino == st.st_ino && fst.st_ino != ost.st_ino);
	CHECK(fstat(dirfd, &fst) == 0 && stat(root, &ost) == 0);
	CHECK(fst.st_ino == ost.st_ino);
	close(fd);
	close(dirfd);
	unlink(p);
	free(r);
	free(p);
	free(other);
}

/* As root: a link of another user is not followed, root's own links are. */
static void test_foreign_link_refused(void)
{
	char *p = xasprintf("%s/foreign", root), *want, *msg;
	bool ours;

	if (geteuid() != 0) {
		fprintf(stderr, "    skipped: needs root to give a link away\n");
		return;
	}
	CHECK(symlink("a/b/file", p) == 0);
	CHECK(lchown(p, 65534, 65534) == 0);
	CHECK(resolve(p, &ours, &msg) == NULL);
	want = xasprintf("Refusing mountpoint '%s': '%s' is a symbolic link owned by uid "
			 "65534 (only links owned by root in directories owned by root are "
			 "followed)", p, p);
	CHECK_STREQ(msg, want);
	free(want);
	free(msg);
	CHECK(lchown(p, 0, 0) == 0);
	check_resolves(p, "a/b/file");
	unlink(p);
	free(p);
}

int main(void)
{
	static const struct unit_test tests[] = {
		{ "absolute and relative", test_absolute_and_relative },
		{ "symlinks", test_symlinks },
		{ "errors", test_errors },
		{ "served paths are never stat'ed", test_ours_never_stat },
		{ "final stat", test_regular_stat },
		{ "the fd is the file checked", test_fd_is_the_file_checked },
		{ "links of other users are refused", test_foreign_link_refused },
		{ NULL, NULL },
	};
	int ret;

	setup();
	ret = unit_run("fuse-mountpoint", tests);
	teardown();
	return ret;
}
