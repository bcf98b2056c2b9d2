package io.ptune.e2e;

import static io.ptune.TestPaths.KERNEL_INDEPENDENT;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.ptune.TestPaths;
import io.ptune.data.AlpacaDataset;
import io.ptune.data.AlpacaExample;
import io.ptune.train.TrainingCheckpoint;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.DisabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;

/**
 * A job restarted with the same command line, the way schedulers and spot instances restart it:
 * a child {@code ptune train --save-every N --resume} is killed with SIGKILL (before its first
 * checkpoint, during a checkpoint write, and at a random moment), then run to the end; its adapter
 * must be byte for byte the adapter of an uninterrupted run.
 */
@DisabledIfSystemProperty(named = "ptune.kernel", matches = KERNEL_INDEPENDENT, disabledReason = "runs in as-given only")
class RestartableTrainingTest {
    private static final String MODEL = TestPaths.stories260k().toString();
    private static final Random RANDOM = new Random(20261202);

    @TempDir
    Path dir;

    /** The CLI in a child JVM with this test JVM's class path (native library included). */
    static ProcessBuilder ptune(Path log, List<String> args) {
        return new ProcessBuilder(TestPaths.ptuneCommand(args)).redirectErrorStream(true).redirectOutput(log.toFile());
    }

    private List<String> trainCommand(Path data, Path out) {
        return List.of("train", "--model", MODEL, "--data", data.toString(), "--out", out.toString(),
                "--method", "p-tuning", "--virtual-tokens", "6", "--max-steps", "40", "--batch-size", "8",
                "--max-length", "96", "--lr", "0.03", "--warmup-steps", "3", "--save-every", "4",
                "--keep-checkpoints", "3", "--resume", "--threads", "1");
    }

    @Test
    void killedThreeTimesThenRerunEndsWithTheUninterruptedAdapter() throws Exception {
        Path data = dir.resolve("data.jsonl");
        StringBuilder lines = new StringBuilder();
        for (AlpacaExample e : AlpacaDataset.load(TestPaths.alpacaEn()).head(120).examples()) {
            lines.append(new ObjectMapper().writeValueAsString(e)).append('\n');
        }
        Files.writeString(data, lines);

        Path reference = dir.resolve("reference");
        Result straight = runToEnd(trainCommand(data, reference), dir.resolve("reference.log"));
        assertTrue(straight.log().contains("starting a new run"), straight.log());

        Path out = dir.resolve("restarted");
        Path checkpoints = dir.resolve("restarted-checkpoints");
        List<String> command = trainCommand(data, out);

        // 1. Before the first checkpoint: as soon as the loop starts.
        Path log1 = dir.resolve("kill1.log");
        Process first = ptune(log1, command).start();
        waitFor(log1, "training a p-tuning prompt", first);
        killNow(first);
        assertTrue(checkpointsIn(checkpoints).isEmpty(), "the first kill must come before any checkpoint");

        // 2. During a checkpoint write: the moment a temporary checkpoint directory appears.
        boolean caughtInWrite = false;
        for (int attempt = 0; attempt < 12 && !caughtInWrite; attempt++) {
            Path log = dir.resolve("kill2-" + attempt + ".log");
            Process p = ptune(log, command).start();
            while (p.isAlive() && temporaries(checkpoints).isEmpty()) {
                Thread.onSpinWait();
            }
            killNow(p);
            caughtInWrite = !temporaries(checkpoints).isEmpty();
            System.out.printf("try %d: killed %s a checkpoint write%n", attempt + 1, caughtInWrite ? "during" : "outside");
            if (attempt == 0) {
                assertTrue(Files.readString(log).contains("starting a new run"), Files.readString(log));
            }
        }
        assertTrue(caughtInWrite, "no kill landed inside a checkpoint write in 12 tries");

        // 3. At a random moment after this run's first checkpoint (on a loaded machine a fixed delay
        // could end before any checkpoint, and the last run would have nothing to resume).
        Path log3 = dir.resolve("kill3.log");
        Process third = ptune(log3, command).start();
        waitFor(log3, "checkpoint written", third);
        Thread.sleep(RANDOM.nextInt(1500));
        killNow(third);

        Result last = runToEnd(command, dir.resolve("final.log"));
        assertTrue(last.log().contains("resuming from " + checkpoints.toAbsolutePath()), last.log());
        assertTrue(last.log().contains("trained 40 steps"), last.log());
        assertTrue(temporaries(checkpoints).isEmpty(), "the interrupted write's leftovers are removed");
        for (String file : List.of("adapter_model.safetensors", "adapter_config.json")) {
            assertArrayEquals(Files.readAllBytes(reference.resolve(file)), Files.readAllBytes(out.resolve(file)),
                    file + " differs from the uninterrupted run's");
        }
        for (Path checkpoint : checkpointsIn(checkpoints)) {
            TrainingCheckpoint.verify(checkpoint);
        }
    }

    record Result(int exitCode, String log) {}

    private static Result runToEnd(List<String> command, Path log) throws IOException, InterruptedException {
        Process p = ptune(log, command).start();
        if (!p.waitFor(5, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            throw new AssertionError("ptune did not finish in 5 minutes: " + Files.readString(log));
        }
        Result result = new Result(p.exitValue(), Files.readString(log));
        assertEquals(0, result.exitCode(), result.log());
        return result;
    }

    private static void waitFor(Path log, String text, Process p) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
        while (!Files.readString(log).contains(text)) {
            if (!p.isAlive() || System.nanoTime() > deadline) {
                throw new AssertionError("never saw '" + text + "': " + Files.readString(log));
            }
            Thread.sleep(2);
        }
    }

    /** SIGKILL: no shutdown hook, no finally block runs. */
    private static void killNow(Process p) throws InterruptedException {
        p.destroyForcibly();
        assertTrue(p.waitFor(1, TimeUnit.MINUTES));
    }

    private static List<Path> checkpointsIn(Path dir) throws IOException {
        return list(dir, "checkpoint-");
    }

    private static List<Path> temporaries(Path dir) throws IOException {
        return list(dir, ".checkpoint-");
    }

    private static List<Path> list(Path dir, String prefix) throws IOException {
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        try (Stream<Path> entries = Files.list(dir)) {
            return entries.filter(p -> p.getFileName().toString().startsWith(prefix)).sorted().toList();
        } catch (java.nio.file.NoSuchFileException e) {
            return List.of(); // an entry vanished while listing: a rename in progress
        }
    }
}
