/*
 * shared_dir - one open descriptor per directory per process.
 *
 * imapd holds a user's Maildir and the selected folder's cur/ and new/ open
 * for as long as a session lasts; a phone, a desktop and a sync tool of the
 * same user would each hold their own. Directory descriptors carry no state
 * that matters here (every readdir opens "." afresh), so sessions that open
 * the same directory (same device and inode) share one descriptor, counted.
 * That keeps thousands of IDLE sessions within the process's file limit.
 */
#ifndef POSTERN_SHARED_DIR_H
#define POSTERN_SHARED_DIR_H

/* shared_dir_adopt - fd, a directory just opened, or the process's descriptor of the same
 * directory (fd is then closed); -1 (fd closed, errno set) when fd cannot be looked at */
int     shared_dir_adopt(int fd);
/* shared_dir_release - one user of fd less; closed with the last one (-1 is ignored) */
void    shared_dir_release(int fd);

#endif
