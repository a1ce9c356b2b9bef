/*
 * created-files.h: the mountpoint files that `exportctl add` created, so
 * that `exportctl del` removes those and only those.  add notes each in a
 * directory beside the daemon's socket (SOCKET.created/ID: the file's
 * device, inode and path); del removes the file only if it is still that
 * same empty regular file, so a file someone put there since is kept.
 */
#ifndef EXPORTCTL_CREATED_FILES_H
#define EXPORTCTL_CREATED_FILES_H

#include <sys/types.h>

/*
 * Note that path, the file (dev, ino), was created for export id of the
 * daemon on socket (stat it before the export is mounted over it).
 * 0, or -1 with *errp (allocated): the file is then not removed by del.
 */
int created_file_note(const char *socket, const char *id, const char *path,
		      dev_t dev, ino_t ino, char **errp);

/*
 * Forget a note for id left by an export deleted behind exportctl's back:
 * the new export of that id did not create its mountpoint (inode numbers
 * are reused, so the file's identity alone cannot tell).
 */
void created_file_forget(const char *socket, const char *id);

/*
 * Remove the mountpoint file noted for id, if it is still the one add
 * created and is empty, and forget it.  Returns its path (allocated) when
 * removed, NULL otherwise (*errp set when something failed).
 */
char *created_file_remove(const char *socket, const char *id, char **errp);

#endif
