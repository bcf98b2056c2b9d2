package io.ptune;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Shared by the parser fuzz tests (@FuzzTest): one scratch folder per JVM that every input is
 * written into (the parsers read files), and the check that an error is a clear one.
 *
 * <p>A fuzz test passes an input when the parser either accepts it or throws the documented
 * {@link PtuneException} subclass; anything else (another exception, an Error such as
 * OutOfMemoryError or StackOverflowError, a hang) is a finding.
 */
public final class FuzzFiles {
    private static final Path SCRATCH = createScratch();

    private FuzzFiles() {}

    private static Path createScratch() {
        try {
            Path dir = Files.createTempDirectory("ptune-fuzz-");
            dir.toFile().deleteOnExit();
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A folder of the scratch area, emptied of the files a previous input left. */
    public static Path folder(String name) {
        Path dir = SCRATCH.resolve(name);
        try {
            Files.createDirectories(dir);
            try (var entries = Files.list(dir)) {
                for (Path entry : (Iterable<Path>) entries::iterator) {
                    Files.delete(entry);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return dir;
    }

    /** Writes {@code bytes} to {@code dir/name}. */
    public static Path write(Path dir, String name, byte[] bytes) {
        Path file = dir.resolve(name);
        try {
            Files.write(file, bytes);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return file;
    }

    /** The error is one a user can act on: it has a message and the message names the file. */
    public static void assertNamesFile(PtuneException e, Path file) {
        assertNotNull(e.getMessage(), () -> "no message: " + e);
        assertTrue(e.getMessage().contains(file.getFileName().toString()),
                () -> "the message does not name " + file.getFileName() + ": " + e.getMessage());
    }
}
