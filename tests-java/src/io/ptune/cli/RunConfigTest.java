package io.ptune.cli;

import static io.ptune.CliRun.run;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.ptune.CliRun.Result;
import io.ptune.TestPaths;
import io.ptune.train.DevMetric;
import io.ptune.train.LossAveraging;
import io.ptune.train.LrSchedule;
import io.ptune.train.NonFinitePolicy;
import io.ptune.train.TrainingConfig;
import io.ptune.train.TrainingSetting;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.DisabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

/**
 * Run configs ({@code --config}), the settings' one definition ({@link TrainingSetting}) and
 * {@code training_args.json}.
 */
@DisabledIfSystemProperty(named = "ptune.kernel", matches = TestPaths.KERNEL_INDEPENDENT)
class RunConfigTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String MODEL = TestPaths.stories260k().toString();

    @TempDir
    Path dir;


    /** Parses {@code args} as {@code ptune train} would, applies the config, returns the command. */
    private static TrainCommand parsed(String... args) {
        CommandLine commandLine = new CommandLine(new PtuneCli());
        CommandLine.ParseResult result = commandLine.parseArgs(args);
        CommandLine train = result.subcommand().commandSpec().commandLine();
        return train.getCommand();
    }

    @Test
    void everySettingIsAFlagOfTrainAndRoundTripsThroughTheConfig() {
        CommandSpec train = new CommandLine(new PtuneCli()).getSubcommands().get("train").getCommandSpec();
        for (TrainingSetting setting : TrainingSetting.values()) {
            OptionSpec option = train.findOption(setting.flag());
            assertNotNull(option, setting.flag());
            assertEquals(setting.valueType(), option.type(), setting.key());
            assertEquals(setting.flag(), SettingOptions.FLAGS.get(setting.field()));
            assertTrue(option.description()[0].length() > 10, setting.key());
        }
        // A value of each setting, different from its default, survives builder -> read.
        Map<TrainingSetting, Object> values = Map.ofEntries(
                Map.entry(TrainingSetting.LEARNING_RATE, 0.03), Map.entry(TrainingSetting.MAX_STEPS, 7L),
                Map.entry(TrainingSetting.BATCH_SIZE, 3), Map.entry(TrainingSetting.GRAD_ACCUM, 2),
                Map.entry(TrainingSetting.LOSS_AVERAGING, "micro-batches"), Map.entry(TrainingSetting.MAX_LENGTH, 99),
                Map.entry(TrainingSetting.SEED, 5L), Map.entry(TrainingSetting.WARMUP_STEPS, 2L),
                Map.entry(TrainingSetting.SCHEDULE, "cosine"), Map.entry(TrainingSetting.WEIGHT_DECAY, 0.01),
                Map.entry(TrainingSetting.MAX_GRAD_NORM, 0.5), Map.entry(TrainingSetting.ADAM_BETA1, 0.8),
                Map.entry(TrainingSetting.ADAM_BETA2, 0.99), Map.entry(TrainingSetting.ADAM_EPSILON, 1e-6),
                Map.entry(TrainingSetting.LOG_EVERY, 3), Map.entry(TrainingSetting.EVAL_EVERY, 4L),
                Map.entry(TrainingSetting.METRIC, "accuracy"), Map.entry(TrainingSetting.PATIENCE, 2),
                Map.entry(TrainingSetting.ON_NONFINITE, "skip"), Map.entry(TrainingSetting.MAX_NONFINITE, 4),
                Map.entry(TrainingSetting.STAGE2_LAYERS, 1), Map.entry(TrainingSetting.STAGE2_LR, 2e-5),
                Map.entry(TrainingSetting.STAGE2_STEPS, 6L));
        TrainingConfig.Builder builder = TrainingConfig.builder();
        values.forEach((setting, value) -> setting.apply(builder, value));
        TrainingConfig config = builder.build();
        Set<TrainingSetting> covered = new HashSet<>(values.keySet());
        for (Map.Entry<TrainingSetting, Object> entry : values.entrySet()) {
            assertEquals(entry.getValue(), entry.getKey().read(config), entry.getKey().key());
        }
        assertNull(TrainingSetting.EPOCHS.read(config), "epochs do not apply to a max-steps run");
        assertNull(TrainingSetting.STAGE2_EPOCHS.read(config), "stage-2 epochs do not apply with stage-2 steps");
        covered.add(TrainingSetting.EPOCHS);
        covered.add(TrainingSetting.STAGE2_EPOCHS);
        assertEquals(Set.of(TrainingSetting.values()), covered, "every setting is exercised");
        assertEquals(LossAveraging.MICRO_BATCHES, config.lossAveraging());
        assertEquals(LrSchedule.COSINE, config.schedule());
        assertEquals(DevMetric.ACCURACY, config.metric());
        assertEquals(NonFinitePolicy.SKIP, config.onNonFinite());
    }

    @Test
    void yamlAndJsonFilesSetFlagsAndTheCommandLineWins() throws Exception {
        Path yaml = dir.resolve("run.yaml");
        Files.writeString(yaml, """
                # a run config
                model: models/tiny
                data: data/train.json
                out: adapters/run1
                method: p-tuning
                virtual-tokens: 12
                lr: 3e-2
                max-steps: 40
                schedule: cosine
                prefix-projection: false
                """);
        TrainCommand command = parsed("train", "--config", yaml.toString(), "--lr", "0.5");
        TrainingConfig config = command.trainingConfig();
        assertEquals(0.5, config.learningRate(), "the command line overrides the file");
        assertEquals(40, config.maxSteps());
        assertEquals(LrSchedule.COSINE, config.schedule());
        assertEquals(12, command.virtualTokens);
        assertEquals("p-tuning", command.method);
        assertEquals(dir.resolve("data/train.json"), command.data, "relative paths are against the file's folder");
        assertEquals(dir.resolve("adapters/run1"), command.out);

        Path json = dir.resolve("run.json");
        Files.writeString(json, """
                {"model": "/m", "data": "/d.json", "out": "/o", "batch-size": 3, "epochs": 2,
                 "loss-averaging": "micro-batches", "init": "text:Once upon a time"}
                """);
        TrainCommand fromJson = parsed("train", "--config", json.toString(), "--batch-size", "5");
        assertEquals(5, fromJson.trainingConfig().batchSize());
        assertEquals(2, fromJson.trainingConfig().epochs());
        assertEquals(LossAveraging.MICRO_BATCHES, fromJson.trainingConfig().lossAveraging());
        assertEquals("text:Once upon a time", fromJson.init);
    }

    @Test
    void badFilesFailNamingTheFileAndKey() throws Exception {
        Path typo = dir.resolve("typo.yaml");
        Files.writeString(typo, "model: /m\ndata: /d\nout: /o\nvirtual_tokens: 8\n");
        Result result = run("train", "--config", typo.toString());
        assertEquals(1, result.exitCode());
        assertTrue(result.err().contains(typo + ": unknown key 'virtual_tokens'; did you mean 'virtual-tokens'?"),
                result.err());

        Files.writeString(typo, "model: /m\ndata: /d\nout: /o\nmax-step: 8\n");
        result = run("train", "--config", typo.toString());
        assertTrue(result.err().contains("did you mean 'max-steps'?"), result.err());

        Files.writeString(typo, "model: /m\ndata: /d\nout: /o\nbatch-size: eight\n");
        result = run("train", "--config", typo.toString());
        assertTrue(result.err().contains(typo + ": batch-size takes a whole number, not 'eight'"), result.err());

        Files.writeString(typo, "model: /m\ndata: /d\nout: /o\nprefix-projection: 1\n");
        result = run("train", "--config", typo.toString());
        assertTrue(result.err().contains("prefix-projection is a switch: give true or false"), result.err());

        Files.writeString(typo, "- a\n- b\n");
        result = run("train", "--model", "/m", "--data", "/d", "--out", "/o", "--config", typo.toString());
        assertTrue(result.err().contains("not a mapping of flags to values"), result.err());

        Files.writeString(typo, "model: [unclosed\n");
        result = run("train", "--model", "/m", "--data", "/d", "--out", "/o", "--config", typo.toString());
        assertTrue(result.err().contains(typo + " is not valid YAML or JSON"), result.err());

        result = run("train", "--model", "/m", "--data", "/d", "--out", "/o", "--config",
                dir.resolve("missing.yaml").toString());
        assertTrue(result.err().contains("missing.yaml does not exist"), result.err());
        assertFalse(result.err().contains("Exception"), result.err());
    }

    @Test
    void serveTakesItsAdaptersAsAMappingWithFoldersAgainstTheFile() throws Exception {
        Path yaml = dir.resolve("serve.yaml");
        Files.writeString(yaml, "model: m\nport: 0\nadapters:\n  max: adapters/max\n  qa: /abs/qa\n");
        CommandLine commandLine = new CommandLine(new PtuneCli());
        CommandLine.ParseResult result = commandLine.parseArgs("serve", "--config", yaml.toString());
        ServeCommand serve = result.subcommand().commandSpec().commandLine().getCommand();
        assertEquals(List.of("max=" + dir.resolve("adapters/max"), "qa=/abs/qa"), serve.adapters);
        Files.writeString(yaml, "model: m\nport: 0\nadapters: [a=x, b=y]\n");
        result = new CommandLine(new PtuneCli()).parseArgs("serve", "--config", yaml.toString());
        ServeCommand listed = result.subcommand().commandSpec().commandLine().getCommand();
        assertEquals(List.of("a=x", "b=y"), listed.adapters);
    }

    @Test
    void everyOptionOfEveryCommandCanBeReadFromAFile() {
        CommandLine cli = new CommandLine(new PtuneCli());
        for (CommandLine sub : cli.getSubcommands().values()) {
            for (Map.Entry<String, OptionSpec> entry : RunConfigFile.optionsByKey(sub.getCommandSpec()).entrySet()) {
                Class<?> type = entry.getValue().type();
                if (entry.getValue().isMultiValue()) {
                    assertEquals(",", entry.getValue().splitRegex(), sub.getCommandName() + " " + entry.getKey());
                    continue;
                }
                assertTrue(List.of(Integer.class, int.class, Long.class, long.class, Double.class, double.class,
                        String.class, Path.class, boolean.class, Boolean.class).contains(type),
                        sub.getCommandName() + " " + entry.getKey() + " has type " + type);
            }
        }
    }

    @Test
    void trainingArgsReproduceTheRunAndResumeComparesThem() throws Exception {
        Path data = dir.resolve("data.json");
        Files.copy(TestPaths.root().resolve("examples/data/max_the_dog.json"), data);
        Path yaml = dir.resolve("run.yaml");
        Files.writeString(yaml, "model: " + MODEL + "\ndata: data.json\nvirtual-tokens: 4\nmax-steps: 6\n"
                + "batch-size: 4\nlr: 0.05\nseed: 3\n");
        Path first = dir.resolve("first");
        Result result = run("train", "--config", yaml.toString(), "--out", first.toString());
        assertEquals(0, result.exitCode(), result.err());
        JsonNode args = JSON.readTree(first.resolve("training_args.json").toFile());
        assertEquals(4, args.get("virtual-tokens").asInt());
        assertEquals("prompt-tuning", args.get("method").asText(), "the resolved default is recorded");
        assertEquals(0.05, args.get("lr").asDouble());
        assertEquals(256, args.get("max-length").asInt(), "defaults are recorded");
        assertEquals("linear", args.get("schedule").asText());
        assertEquals(data.toAbsolutePath().toString(), args.get("data").asText());
        assertFalse(args.has("epochs"), "epochs do not apply to a max-steps run");
        assertEquals(Files.getPosixFilePermissions(first.resolve("adapter_config.json")),
                Files.getPosixFilePermissions(first.resolve("training_args.json")), "not a private temporary file");
        JsonNode results = JSON.readTree(first.resolve("train_results.json").toFile());
        assertEquals(6, results.get("steps").asLong());

        // training_args.json is itself a run config: it repeats the run bit for bit.
        Path again = dir.resolve("again");
        result = run("train", "--config", first.resolve("training_args.json").toString(), "--out", again.toString());
        assertEquals(0, result.exitCode(), result.err());
        assertTrue(java.util.Arrays.equals(Files.readAllBytes(first.resolve("adapter_model.safetensors")),
                Files.readAllBytes(again.resolve("adapter_model.safetensors"))), "the same run, the same adapter");

        // A resumed job with other data fails naming --data.
        Path resumable = dir.resolve("resumable");
        result = run("train", "--config", yaml.toString(), "--out", resumable.toString(), "--save-every", "3",
                "--resume");
        assertEquals(0, result.exitCode(), result.err());
        Path other = dir.resolve("other.json");
        Files.copy(data, other);
        result = run("train", "--config", yaml.toString(), "--data", other.toString(), "--out",
                resumable.toString(), "--save-every", "3", "--resume");
        assertEquals(1, result.exitCode());
        assertTrue(result.err().contains("--data is " + other.toAbsolutePath() + " here but "
                + data.toAbsolutePath()), result.err());
    }
}
