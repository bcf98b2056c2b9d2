package io.ptune.internal;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ThreadLocalRandom;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The file moves, flushes and deletions behind atomic writes (adapters, checkpoints): write into a
 * temporary directory, {@link #syncTree} it, rename it into place, {@link #syncDirectory} the
 * parent. After a crash or power loss the target is then either the old one or the complete new
 * one.
 */
public final class FileTrees {
    private static final Logger LOG = LoggerFactory.getLogger(FileTrees.class);

    private FileTrees() {}

    /** Renames {@code from} to {@code to}, replacing it, atomically where the file system can. */
    public static void moveAtomically(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to, StandardCopyOption.REPLACE_EXISTING);
        }
    }

    /**
     * Writes {@code content} to {@code file} atomically: a temporary file beside it, forced to the
     * disk, then renamed over it (a reader sees the old file or the whole new one, never a part).
     */
    public static void writeAtomically(Path file, byte[] content) throws IOException {
        Path folder = file.toAbsolutePath().getParent();
        // Not Files.createTempFile, which makes the file private (0600): this one keeps the umask's mode.
        Path temp = folder.resolve("." + file.getFileName() + ".tmp-" + Long.toUnsignedString(
                ThreadLocalRandom.current().nextLong(), 36));
        try {
            Files.write(temp, content, StandardOpenOption.CREATE_NEW,
                    StandardOpenOption.WRITE);
            syncFile(temp);
            moveAtomically(temp, file);
            syncDirectory(folder);
        } finally {
            Files.deleteIfExists(temp);
        }
    }

    /**
     * Forces every file and directory below {@code root} (and {@code root} itself) to the disk, so
     * that a rename that follows never publishes data still only in the page cache.
     */
    public static void syncTree(Path root) throws IOException {
        try (Stream<Path> paths = Files.walk(root)) {
            List<Path> all = new ArrayList<>(paths.toList());
            all.sort(Comparator.reverseOrder()); // files before the directories that hold them
            for (Path path : all) {
                if (Files.isDirectory(path)) {
                    syncDirectory(path);
                } else {
                    syncFile(path);
                }
            }
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
    }

    /** Forces one file's data and metadata to the disk. */
    public static void syncFile(Path file) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            channel.force(true);
        }
    }

    /** Forces a directory's entries (a rename into it, a new file) to the disk. */
    public static void syncDirectory(Path dir) throws IOException {
        try (FileChannel channel = FileChannel.open(dir, StandardOpenOption.READ)) {
            channel.force(true);
        } catch (IOException e) {
            // Some file systems cannot open a directory for syncing; the data itself is synced.
            LOG.debug("cannot sync directory {}: {}", dir, e.toString());
        }
    }

    /**
     * An I/O failure in words a user can act on: {@link #spaceProblem} when it is one, else the
     * exception itself.
     */
    public static String describe(IOException e) {
        return spaceProblem(e).orElse(e.toString());
    }

    /**
     * A full disk or a file-size limit, said so (the JDK reports both only as "No space left on
     * device" / "File too large" deep in the message); empty for any other failure.
     */
    public static Optional<String> spaceProblem(IOException e) {
        String text = String.valueOf(e.getMessage());
        if (text.contains("No space left on device") || text.contains("Disk quota exceeded")) {
            return Optional.of("the disk is full (" + e + "); free some space or write elsewhere");
        }
        if (text.contains("File too large")) {
            return Optional.of("a file-size limit was reached (" + e + "; see ulimit -f); raise it or write elsewhere");
        }
        return Optional.empty();
    }

    /** Deletes {@code root} and everything below it. */
    public static void delete(Path root) throws IOException {
        try (Stream<Path> paths = Files.walk(root)) {
            List<Path> all = new ArrayList<>(paths.toList());
            all.sort(Comparator.reverseOrder());
            for (Path path : all) {
                Files.deleteIfExists(path);
            }
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
    }

    /** {@link #delete} for temporary files: a failure is logged, not thrown. */
    public static void deleteOrWarn(Path root) {
        try {
            delete(root);
        } catch (IOException e) {
            LOG.warn("could not remove temporary directory {}: {}", root, e.toString());
        }
    }
}
