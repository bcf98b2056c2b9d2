package io.ptune.cli;

import io.ptune.CliRun.Result;
import static io.ptune.CliRun.run;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.TestPaths;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Exit codes and messages for bad input; none of these reach the native core. */
class PtuneCliTest {
    @TempDir
    Path dir;



    private static void assertFails(Result result, String expected) {
        assertEquals(1, result.exitCode(), result.err());
        assertTrue(result.err().contains(expected), "expected '" + expected + "' in: " + result.err());
        assertFalse(result.err().contains("\tat "), "no stack trace without --verbose: " + result.err());
    }

    @Test
    void noSubcommandFails() {
        assertFails(run(), "subcommand");
    }

    @Test
    void unknownLossAveragingFails() {
        assertFails(run("train", "--model", "m", "--data", "d.json", "--out", "o", "--loss-averaging", "sideways"),
                "--loss-averaging: 'sideways' is not one of tokens, micro-batches");
    }

    @Test
    void nonPositiveThreadCountFails() {
        assertFails(run("logits", "--model", "m", "--ids", "1", "--json", "--threads", "0"), "--threads: must be between 1 and 1024");
    }

    @Test
    void unknownOrMissingFlagsFail() {
        assertFails(run("generate", "--model", "m", "--prompt", "x", "--frobnicate"), "--frobnicate");
        assertFails(run("train", "--data", "d.json", "--out", "o"), "--model");
        assertFails(run("generate", "--model", "m"), "--prompt");
        assertFails(run("logits", "--model", "m", "--prompt", "x", "--ids", "1,2", "--json"), "mutually exclusive");
        assertFails(run("train", "--model", "m", "--data", "d", "--out", "o", "--virtual-tokens", "many"),
                "--virtual-tokens");
        assertFails(run("logits", "--model", "no-such-model", "--ids", "1,x", "--json"), "--ids: 'x'");
    }

    @Test
    void configuredCommandLinePrefixesErrors() {
        Result result = run(PtuneCli.commandLine(), "generate", "--model", "m");
        assertEquals(1, result.exitCode());
        assertTrue(result.err().startsWith("error: "), result.err());
        assertTrue(result.err().contains("--help"), result.err());
    }

    @Test
    void invalidTrainingSettingsNameTheFlag() throws IOException {
        Path data = dir.resolve("d.json");
        Files.writeString(data, "[{\"instruction\": \"a\", \"output\": \"b\"}]");
        String model = TestPaths.stories260k().toString();
        String out = dir.resolve("out").toString();
        assertFails(run("train", "--model", model, "--data", data.toString(), "--out", out, "--virtual-tokens", "0"),
                "error: --virtual-tokens: must be > 0");
        assertFails(run("train", "--model", model, "--data", data.toString(), "--out", out, "--epochs", "2",
                "--max-steps", "3"), "--max-steps");
        assertFails(run("train", "--model", model, "--data", data.toString(), "--out", out, "--lr", "-1"), "--lr");
        assertFails(run("train", "--model", model, "--data", data.toString(), "--out", out, "--init", "zeros"),
                "--init");
        assertFails(run("train", "--model", model, "--data", data.toString(), "--out", out, "--init", "text:"),
                "--init");
        assertFails(run("train", "--model", model, "--data", data.toString(), "--out", out, "--schedule", "step"),
                "--schedule");
        assertFalse(Files.exists(dir.resolve("out")));
    }

    @Test
    void missingFilesAreReportedBeforeAnyWork() throws IOException {
        Path data = dir.resolve("d.json");
        Files.writeString(data, "[{\"instruction\": \"a\", \"output\": \"b\"}]");
        assertFails(run("train", "--model", TestPaths.stories260k().toString(), "--data",
                dir.resolve("absent.json").toString(), "--out", dir.resolve("o").toString()), "absent.json");
        assertFails(run("train", "--model", dir.resolve("no-model").toString(), "--data", data.toString(),
                "--out", dir.resolve("o").toString()), "no-model");
        Files.writeString(dir.resolve("empty.json"), "[]");
        assertFails(run("train", "--model", TestPaths.stories260k().toString(), "--data",
                dir.resolve("empty.json").toString(), "--out", dir.resolve("o").toString()), "no examples");
        assertFails(run("generate", "--model", dir.toString(), "--prompt", "hi"), "config.json");
        assertFails(run("logits", "--model", dir.resolve("nothing").toString(), "--ids", "1,2", "--json"),
                "does not exist");
    }

    @Test
    void badSamplingFlagsFail() {
        String model = TestPaths.stories260k().toString();
        assertFails(run("generate", "--model", model, "--prompt", "x", "--greedy", "--temperature", "0.5"),
                "--greedy");
        assertFails(run("generate", "--model", model, "--prompt", "x", "--top-p", "1.5"), "--top-p");
        assertFails(run("generate", "--model", model, "--prompt", "x", "--temperature", "0"), "--temperature");
    }

    @Test
    void verbosePrintsTheStackTrace() {
        Result result = run("generate", "--verbose", "--model", dir.resolve("absent").toString(), "--prompt", "x");
        assertEquals(1, result.exitCode());
        assertTrue(result.err().contains("error: ") && result.err().contains("\tat "), result.err());
    }

    @Test
    void parsesIds() {
        assertArrayEquals(new long[] {1, 2, 300}, InputOptions.parseIds("1, 2,300"));
        assertThrows(IllegalArgumentException.class, () -> InputOptions.parseIds("1,,2"));
        assertThrows(IllegalArgumentException.class, () -> InputOptions.parseIds("1,a"));
    }

    @Test
    void topIds() {
        assertArrayEquals(new int[] {2, 0, 3}, LogitsCommand.topIds(new float[] {5, 1, 9, 4}, 3));
    }
}
