/*
 * created-files.c: the notes of the mountpoint files exportctl add created
 * (see created-files.h).  A note is one small file per export, written
 * atomically (a temporary file renamed over it), readable only by its owner.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "created-files.h"
#include "ctl-util.h"

static char *note_dir(const char *socket)
{
	return ctl_xasprintf("%s.created", socket);
}

int created_file_note(const char *socket, const char *id, const char *path,
		      dev_t dev, ino_t ino, char **errp)
{
	char *dir = note_dir(socket);
	char *note = ctl_xasprintf("%s/%s", dir, id);
	char *tmp = ctl_xasprintf("%s/.%s.tmp", dir, id);
	FILE *f = NULL;
	int ret = -1;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		*errp = ctl_xasprintf("cannot create '%s': %s", dir, strerror(errno));
		goto out;
	}
	f = fopen(tmp, "wxe");
	if (!f && errno == EEXIST && unlink(tmp) == 0)
		f = fopen(tmp, "wxe");
	if (!f) {
		*errp = ctl_xasprintf("cannot create '%s': %s", tmp, strerror(errno));
		goto out;
	}
	fprintf(f, "%" PRIuMAX " %" PRIuMAX "\n%s\n", (uintmax_t)dev,
		(uintmax_t)ino, path);
	if (fclose(f) != 0 || rename(tmp, note) < 0) {
		*errp = ctl_xasprintf("cannot write '%s': %s", note, strerror(errno));
		unlink(tmp);
		goto out;
	}
	ret = 0;
out:
	free(dir);
	free(note);
	free(tmp);
	return ret;
}

void created_file_forget(const char *socket, const char *id)
{
	char *dir = note_dir(socket);
	char *note = ctl_xasprintf("%s/%s", dir, id);

	if (unlink(note) == 0)
		rmdir(dir);	/* fails while other notes are there, as it should */
	free(dir);
	free(note);
}

char *created_file_remove(const char *socket, const char *id, char **errp)
{
	char *dir = note_dir(socket);
	char *note = ctl_xasprintf("%s/%s", dir, id);
	char path[4096];
	uintmax_t dev, ino;
	struct stat st;
	char *removed = NULL;
	FILE *f = fopen(note, "re");
	size_t len;

	if (!f)
		goto out;	/* add did not create this mountpoint */
	if (fscanf(f, "%ju %ju\n", &dev, &ino) != 2 || !fgets(path, sizeof(path), f)) {
		fclose(f);
		*errp = ctl_xasprintf("'%s' is not a note of exportctl add", note);
		goto out;
	}
	fclose(f);
	len = strlen(path);
	if (len && path[len - 1] == '\n')
		path[--len] = '\0';
	unlink(note);
	rmdir(dir);	/* fails while other notes are there, as it should */
	/* Only the very file add created, still empty: nothing of anyone's. */
	if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != 0 ||
	    (uintmax_t)st.st_dev != dev || (uintmax_t)st.st_ino != ino)
		goto out;
	if (unlink(path) < 0) {
		*errp = ctl_xasprintf("cannot remove mountpoint file '%s': %s", path,
				      strerror(errno));
		goto out;
	}
	removed = ctl_xstrdup(path);
out:
	free(dir);
	free(note);
	return removed;
}
