package io.ptune.e2e;

import static io.ptune.TestPaths.KERNEL_INDEPENDENT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.TestPaths;
import io.ptune.train.TrainingCheckpoint;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.DisabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

/**
 * Saving an adapter or a checkpoint onto a full disk fails with one clear line and exit code 1;
 * the previous adapter and checkpoints stay as they were, and no temporary directory is left.
 * Where this machine allows a private mount namespace (root), the disk is a real 4 MiB tmpfs filled
 * to the last block (ENOSPC); elsewhere a file-size limit (ulimit -f, EFBIG) stands in for it.
 * The script is tests-java/resources/reliability/full-disk.sh.
 */
@DisabledIfSystemProperty(named = "ptune.kernel", matches = KERNEL_INDEPENDENT, disabledReason = "runs in as-given only")
class FullDiskTest {
    @TempDir
    Path dir;

    @Test
    void aFullDiskFailsClearlyAndKeepsThePreviousAdapterAndCheckpoints() throws Exception {
        Path data = dir.resolve("data.jsonl");
        Files.writeString(data, """
                {"instruction": "Tell a story about a cat.", "input": "", "output": "The cat was happy."}
                {"instruction": "Tell a story about a dog.", "input": "", "output": "The dog was happy."}
                {"instruction": "Name a color.", "input": "", "output": "Red."}
                """);
        Path script = TestPaths.root().resolve("tests-java/resources/reliability/full-disk.sh");
        Path work = dir.resolve("work");
        String mode = canMountPrivately() ? "tmpfs" : "ulimit";
        List<String> command = new ArrayList<>();
        if (mode.equals("tmpfs")) {
            command.addAll(List.of("unshare", "--mount", "--propagation", "private"));
        }
        command.addAll(List.of("bash", script.toString(), mode, work.toString(), TestPaths.javaBinary(),
                TestPaths.classPath(), TestPaths.stories260k().toString(), data.toString()));
        Process p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(dir.resolve("script.log")
                .toFile()).start();
        assertTrue(p.waitFor(5, TimeUnit.MINUTES), "the script did not finish");
        assertEquals(0, p.exitValue(), Files.readString(dir.resolve("script.log")));
        System.out.println("full disk simulated with " + mode);

        assertEquals("0", Files.readString(work.resolve("run-first.rc")).strip(), log(work, "first"));
        String expected = mode.equals("tmpfs") ? "the disk is full" : "a file-size limit was reached";
        for (String run : List.of("adapter", "checkpoint")) {
            assertEquals("1", Files.readString(work.resolve("run-" + run + ".rc")).strip(), log(work, run));
            List<String> errors = log(work, run).lines().filter(l -> l.startsWith("error: ")).toList();
            assertEquals(1, errors.size(), log(work, run));
            assertTrue(errors.get(0).contains(expected), errors.get(0));
        }
        assertTrue(log(work, "adapter").contains("error: cannot write the adapter to "), log(work, "adapter"));
        assertTrue(log(work, "adapter").contains("the previous adapter there (if any) is unchanged"));
        assertTrue(log(work, "checkpoint").contains("error: cannot write the checkpoint "), log(work, "checkpoint"));

        // The previous adapter and checkpoints, byte for byte; nothing half-written beside them.
        assertSameTree(work.resolve("adapter-before"), work.resolve("adapter-after"));
        assertSameTree(work.resolve("checkpoints-before"), work.resolve("checkpoints-after"));
        for (String step : List.of("checkpoint-2", "checkpoint-4")) {
            TrainingCheckpoint.verify(work.resolve("checkpoints-after").resolve(step));
        }
        String listing = Files.readString(work.resolve("listing-after"));
        assertFalse(listing.contains(".tmp-"), listing);
    }

    private static String log(Path work, String run) throws java.io.IOException {
        return Files.readString(work.resolve("run-" + run + ".log"));
    }

    private static void assertSameTree(Path expected, Path actual) throws java.io.IOException {
        List<Path> files;
        try (Stream<Path> walk = Files.walk(expected)) {
            files = walk.filter(Files::isRegularFile).map(expected::relativize).sorted().toList();
        }
        List<Path> actualFiles;
        try (Stream<Path> walk = Files.walk(actual)) {
            actualFiles = walk.filter(Files::isRegularFile).map(actual::relativize).sorted().toList();
        }
        assertEquals(files, actualFiles);
        for (Path file : files) {
            assertArrayEquals(Files.readAllBytes(expected.resolve(file)), Files.readAllBytes(actual.resolve(file)),
                    file + " changed");
        }
    }

    /** Whether `unshare --mount` and a tmpfs mount work here (root, or an unprivileged namespace). */
    private static boolean canMountPrivately() throws Exception {
        Path probe = Files.createTempDirectory("ptune-mount-probe");
        try {
            Process p = new ProcessBuilder("unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs",
                    "-o", "size=64k", "tmpfs", probe.toString()).redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
            return p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (java.io.IOException e) {
            return false; // no unshare
        } finally {
            Files.deleteIfExists(probe);
        }
    }
}
