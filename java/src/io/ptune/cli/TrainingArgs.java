package io.ptune.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.AdapterException;
import io.ptune.internal.FileTrees;
import io.ptune.internal.JsonFiles;
import io.ptune.train.TrainingCheckpoint;
import io.ptune.train.TrainingConfig;
import io.ptune.train.TrainingSetting;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

/**
 * {@code training_args.json}: the resolved configuration of a {@code ptune train} run, keyed like
 * run-config files (so {@code --config training_args.json} repeats the run). Training settings
 * appear with their resolved values (defaults included), other flags as given (paths absolute),
 * switches only when on. It is written beside the adapter and into every checkpoint, and a
 * resumed run is compared against the checkpoint's copy.
 */
final class TrainingArgs {
    static final String FILE = TrainingCheckpoint.ARGUMENTS_FILE;
    /** What the run ended with: steps, losses, the best dev metric ({@link #results}). */
    static final String RESULTS_FILE = "train_results.json";

    /** Flags that say how a run is driven or reported, not what it is: left out of the file. */
    private static final Set<String> NOT_RECORDED = Set.of("resume", "resume-from", "verbose");

    /**
     * Flags a resumed run may change: where it writes and how it reports. Prompt flags and
     * training settings are compared by the trainer itself (against the checkpoint's prompt and
     * fingerprint, with the resolved step counts), so they are not compared here either.
     */
    private static final Set<String> NOT_COMPARED = Set.of("out", "checkpoint-dir", "keep-checkpoints",
            "save-every", "metrics-out", "threads", "no-plots", "method", "virtual-tokens", "init", "encoder",
            "encoder-hidden-size", "encoder-layers", "encoder-dropout", "prefix-projection", "generator-hidden-size",
            "blocks",
            // How the model is loaded: a run may continue on another device or in another compute dtype
            // (what is trained and the optimizer state are fp32 either way).
            "device", "dtype");

    private TrainingArgs() {}

    /** The resolved configuration of the run {@code spec} was parsed for. */
    static ObjectNode resolved(CommandSpec spec, TrainingConfig config, Map<String, Object> resolvedExtras) {
        ObjectNode json = JsonFiles.MAPPER.createObjectNode();
        for (Map.Entry<String, OptionSpec> entry : RunConfigFile.optionsByKey(spec).entrySet()) {
            String key = entry.getKey();
            if (NOT_RECORDED.contains(key)) {
                continue;
            }
            TrainingSetting setting = TrainingSetting.byKey(key);
            Object value = resolvedExtras.containsKey(key) ? resolvedExtras.get(key)
                    : setting != null ? setting.read(config) : entry.getValue().getValue();
            if (value == null || Boolean.FALSE.equals(value)) {
                continue;
            }
            if (value instanceof Path path) {
                json.put(key, path.toAbsolutePath().normalize().toString());
            } else {
                json.set(key, JsonFiles.MAPPER.valueToTree(value));
            }
        }
        return json;
    }

    /** Writes {@code args} as {@code dir/training_args.json}, atomically. */
    static void write(Path dir, ObjectNode args) {
        writeJson(dir.resolve(FILE), args);
    }

    /**
     * {@code train_results.json}: {@code steps}, {@code first_loss}, {@code last_loss},
     * {@code stopped_early}, and with a dev set {@code metric}, {@code best_step}, {@code best}
     * (the best evaluation) and {@code kept} (the metric of the prompt written: the best with early
     * stopping, else the last evaluation).
     */
    static ObjectNode results(long steps, double firstLoss, double lastLoss, String metric, long bestStep,
            double best, double kept, boolean stoppedEarly) {
        ObjectNode json = JsonFiles.MAPPER.createObjectNode();
        json.put("steps", steps);
        json.put("first_loss", firstLoss);
        json.put("last_loss", lastLoss);
        json.put("stopped_early", stoppedEarly);
        if (metric != null) {
            json.put("metric", metric);
            json.put("best_step", bestStep);
            json.put("best", best);
            json.put("kept", kept);
        }
        return json;
    }

    /** Writes {@code results} as {@code dir/train_results.json}, atomically. */
    static void writeResults(Path dir, ObjectNode results) {
        writeJson(dir.resolve(RESULTS_FILE), results);
    }

    private static void writeJson(Path file, ObjectNode json) {
        try {
            FileTrees.writeAtomically(file, JsonFiles.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsBytes(json));
        } catch (IOException e) {
            throw new AdapterException("cannot write " + file + ": " + FileTrees.describe(e), e);
        }
    }

    /**
     * Fails naming the first flag whose value here differs from the one recorded in checkpoint
     * {@code dir} (data, dev set, model, task, classification flags...). A checkpoint without a
     * record (written through the Java API) is not compared.
     */
    static void checkResume(ObjectNode current, Path dir) {
        JsonNode saved = TrainingCheckpoint.readArguments(dir).orElse(null);
        if (saved == null) {
            return;
        }
        Set<String> keys = new TreeSet<>();
        current.fieldNames().forEachRemaining(keys::add);
        for (Iterator<String> it = saved.fieldNames(); it.hasNext();) {
            keys.add(it.next());
        }
        for (String key : keys) {
            if (NOT_COMPARED.contains(key) || TrainingSetting.byKey(key) != null) {
                continue;
            }
            JsonNode here = current.get(key);
            JsonNode there = saved.get(key);
            if (here == null ? there != null : !here.equals(there)) {
                throw new IllegalArgumentException("--" + key + " is " + shown(here) + " here but " + shown(there)
                        + " in the run " + dir + " continues (its " + FILE + "); resume with the flags the run was"
                        + " started with");
            }
        }
    }

    private static String shown(JsonNode value) {
        return value == null ? "not given" : value.isTextual() ? value.asText() : value.toString();
    }
}
