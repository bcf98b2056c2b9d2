package io.ptune.cli;

import static io.ptune.CliRun.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.ptune.CliRun.Result;
import io.ptune.TestPaths;
import io.ptune.nativebridge.NativeModel;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code --device} and {@code --dtype} on the commands that load a model. */
class DeviceFlagsTest {
    private static final String MODEL = TestPaths.stories260k().toString();

    @TempDir
    Path dir;

    @Test
    void cudaWithoutAGpuFailsWithOneLine() {
        Assumptions.assumeTrue(NativeModel.cudaDeviceCount() == 0, "a GPU is available here");
        Result result = run("generate", "--model", MODEL, "--prompt", "Once", "--max-new-tokens", "2", "--device", "cuda");
        assertEquals(1, result.exitCode(), result.err());
        assertTrue(result.err().startsWith("error: --device cuda: no CUDA device is available ("), result.err());
        assertTrue(result.err().strip().endsWith("; use --device cpu"), result.err());
        assertEquals(1, result.err().strip().lines().count(), "one line: " + result.err());
        assertEquals("", result.out());
    }

    @Test
    void unknownDeviceOrDtypeNamesTheFlag() {
        Result result = run("generate", "--model", MODEL, "--prompt", "Once", "--device", "tpu");
        assertEquals(1, result.exitCode(), result.err());
        assertTrue(result.err().startsWith("error: --device: 'tpu' is not a device; use cpu, cuda or cuda:N"),
                result.err());
        assertFalse(result.err().contains("\tat "), result.err());

        result = run("logits", "--model", MODEL, "--ids", "1,2", "--json", "--dtype", "fp64");
        assertEquals(1, result.exitCode(), result.err());
        assertTrue(result.err().startsWith("error: --dtype: 'fp64' is not a dtype"), result.err());

        result = run("embed", "--model", MODEL, "--ids", "1,2", "--dtype", "fp16");
        assertEquals(1, result.exitCode(), result.err());
        assertEquals("error: --dtype fp16 needs --device cuda; use bf16 on CPU", result.err().strip());
    }

    @Test
    void everyCommandThatLoadsAModelTakesTheFlags() {
        picocli.CommandLine cli = new picocli.CommandLine(new PtuneCli());
        for (String name : new String[] {"train", "generate", "logits", "embed", "eval", "classify", "serve",
                "inspect"}) {
            picocli.CommandLine.Model.CommandSpec spec = cli.getSubcommands().get(name).getCommandSpec();
            assertTrue(spec.findOption("--device") != null, name + " --device");
            assertTrue(spec.findOption("--dtype") != null, name + " --dtype");
        }
    }

    @Test
    void bf16TrainingRecordsDeviceAndDtype() throws Exception {
        Path data = dir.resolve("data.json");
        Files.copy(TestPaths.root().resolve("examples/data/max_the_dog.json"), data);
        Path yaml = dir.resolve("run.yaml");
        Files.writeString(yaml, "model: " + MODEL + "\ndata: data.json\nvirtual-tokens: 4\nmax-steps: 3\n"
                + "batch-size: 4\nlr: 0.05\nseed: 3\ndtype: bf16\n");
        Path out = dir.resolve("out");
        Result result = run("train", "--config", yaml.toString(), "--out", out.toString());
        assertEquals(0, result.exitCode(), result.err());
        JsonNode args = new ObjectMapper().readTree(out.resolve("training_args.json").toFile());
        assertEquals("bf16", args.get("dtype").asText());
        assertEquals("cpu", args.get("device").asText(), "the default is recorded");
        assertTrue(Files.isRegularFile(out.resolve("adapter_model.safetensors")));
    }
}
