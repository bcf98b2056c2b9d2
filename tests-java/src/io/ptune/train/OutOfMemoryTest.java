package io.ptune.train;

import static io.ptune.TestPaths.KERNEL_INDEPENDENT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.ptune.ResourceExhaustedException;
import io.ptune.Stories260kTest;
import io.ptune.TestMethods;
import io.ptune.TestPaths;
import io.ptune.data.AlpacaDataset;
import io.ptune.inference.GenerationConfig;
import io.ptune.inference.Generator;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.DisabledIfSystemProperty;

/**
 * Host memory running out in the middle of a training step: the allocation failure inside
 * libtorch becomes a {@link ResourceExhaustedException} that says what to make smaller, and the
 * JVM and the loaded model stay usable. The address space of this JVM is capped (the soft
 * RLIMIT_AS, with util-linux's prlimit) to what it uses plus 1 GiB for the one failing call, then
 * restored.
 */
@DisabledIfSystemProperty(named = "ptune.kernel", matches = KERNEL_INDEPENDENT, disabledReason = "runs in as-given only")
class OutOfMemoryTest extends Stories260kTest {
    private static final long HEADROOM_KIB = 1024 * 1024;

    @Test
    void anAllocationFailureIsAClearExceptionAndTheModelStaysUsable() throws Exception {
        assumeTrue(prlimit("--as=unlimited:"), "prlimit cannot change this process's limits here");
        Generator greedy = new Generator(model, null, GenerationConfig.builder().maxNewTokens(24).greedy(true)
                .build());
        String before = greedy.generate("Once upon a time").text();
        AlpacaDataset data = AlpacaDataset.load(TestPaths.alpacaEn()).head(512);
        // Warm-up: classes loaded and native pools made before the cap.
        TrainingConfig small = TrainingConfig.builder().maxSteps(1).batchSize(2).maxLength(64).build();
        try (Trainer trainer = Trainer.create(model, TestMethods.get("prompt-tuning"), small, data.head(4))) {
            trainer.train();
        }
        // 512 sequences of up to 480 tokens: several GiB of activations.
        TrainingConfig huge = TrainingConfig.builder().maxSteps(1).batchSize(512).maxLength(480).build();
        try (Trainer trainer = Trainer.create(model, TestMethods.get("prompt-tuning"), huge, data)) {
            ResourceExhaustedException e;
            assertTrue(prlimit("--as=" + (vmSizeKib() + HEADROOM_KIB) * 1024 + ":"), "cannot cap the address space");
            try {
                e = assertThrows(ResourceExhaustedException.class, trainer::train);
            } finally {
                assertTrue(prlimit("--as=unlimited:"), "cannot lift the address-space cap");
            }
            System.out.println("the failed step said: " + e.getMessage());
            assertTrue(e.getMessage().contains("out of memory"), e.getMessage());
            assertTrue(e.getMessage().contains("--batch-size") && e.getMessage().contains("--max-length"),
                    e.getMessage());
            assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
        }
        // The same model generates as before, and trains again.
        assertEquals(before, greedy.generate("Once upon a time").text());
        try (Trainer trainer = Trainer.create(model, TestMethods.get("prompt-tuning"), small, data.head(4))) {
            assertEquals(1, trainer.train().steps());
        }
    }

    private static long vmSizeKib() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmSize:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        }
        throw new IllegalStateException("no VmSize in /proc/self/status");
    }

    /** Changes this JVM's own limits with util-linux's prlimit; false where that is impossible. */
    private static boolean prlimit(String setting) throws InterruptedException {
        try {
            Process p = new ProcessBuilder("prlimit", "--pid", Long.toString(ProcessHandle.current().pid()), setting)
                    .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
            return p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (IOException e) {
            return false;
        }
    }
}
