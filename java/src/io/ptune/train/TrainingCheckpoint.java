package io.ptune.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.InvalidConfigException;
import io.ptune.PtuneException;
import io.ptune.adapter.PromptAdapter;
import io.ptune.adapter.Safetensors;
import io.ptune.adapter.Safetensors.FloatTensor;
import io.ptune.adapter.Safetensors.SafetensorsFile;
import io.ptune.internal.FileTrees;
import io.ptune.internal.JsonFiles;
import io.ptune.nativebridge.NativePromptTrainer;
import io.ptune.prompt.PromptModule;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * A training checkpoint: everything {@link Trainer#resume} needs to continue a run exactly where it
 * stopped, in a directory {@code checkpoint-<step>/} holding
 *
 * <pre>
 *   adapter/                 the prompt as an adapter (PromptAdapter.save: encoders, stage-2 layers)
 *   optimizer.safetensors    AdamW moments, "&lt;parameter&gt;.exp_avg" / "&lt;parameter&gt;.exp_avg_sq"
 *   trainer_state.json       stage, step, data position (epoch, micro-batches used), loss so far,
 *                            and the settings the run was made with (checked on resume)
 * </pre>
 *
 * The data order is rebuilt from the seed and the epoch number, so nothing of the data is stored.
 * A checkpoint directory is written beside its final name and renamed into place, so a crash never
 * leaves a half-written one.
 */
public final class TrainingCheckpoint {
    public static final String ADAPTER_DIR = "adapter";
    public static final String OPTIMIZER_FILE = "optimizer.safetensors";
    public static final String STATE_FILE = "trainer_state.json";
    static final String FORMAT = "ptune-training-checkpoint/1";
    private static final Pattern NAME = Pattern.compile("checkpoint-(\\d+)");

    /**
     * Where a run stands after an optimizer step.
     *
     * @param stage 1, or 2 for the stage with the top layers unfrozen
     * @param step optimizer steps of the whole run so far
     * @param stageStep optimizer steps of the current stage so far
     * @param epoch the epoch whose batches are being used
     * @param consumedMicroBatches micro-batches of {@code epoch} already trained on
     * @param firstLoss loss of the run's first step
     * @param lastLoss loss of the latest step
     * @param totalTokens real tokens trained on so far
     * @param settings what must be equal for a resumed run to continue this one (name -> value)
     */
    public record State(int stage, long step, long stageStep, int epoch, long consumedMicroBatches,
            double firstLoss, double lastLoss, long totalTokens, Map<String, String> settings) {
        public State {
            settings = Map.copyOf(settings);
        }
    }

    private TrainingCheckpoint() {}

    /** The directory name of the checkpoint after {@code step}. */
    public static String directoryName(long step) {
        return "checkpoint-" + step;
    }

    /**
     * Writes a checkpoint of {@code prompt} and {@code trainer} as {@code parent/checkpoint-<step>}
     * and removes the oldest ones beyond {@code keepLast}.
     */
    static Path write(Path parent, PromptModule prompt, NativePromptTrainer trainer, State state, int keepLast) {
        Path target = parent.resolve(directoryName(state.step())).toAbsolutePath().normalize();
        Path temp = null;
        try {
            Files.createDirectories(target.getParent());
            temp = Files.createTempDirectory(target.getParent(), "." + target.getFileName() + ".tmp-");
            PromptAdapter.save(prompt, temp.resolve(ADAPTER_DIR));
            Map<String, FloatTensor> moments = new LinkedHashMap<>();
            for (String name : prompt.parameterNames()) {
                if (prompt.isTrainable(name)) {
                    float[][] m = trainer.readMoments(name);
                    long[] shape = prompt.shape(name);
                    moments.put(name + ".exp_avg", new FloatTensor(shape, m[0]));
                    moments.put(name + ".exp_avg_sq", new FloatTensor(shape, m[1]));
                }
            }
            Safetensors.write(temp.resolve(OPTIMIZER_FILE), moments, Map.of("format", FORMAT));
            JsonFiles.MAPPER.writerWithDefaultPrettyPrinter().writeValue(temp.resolve(STATE_FILE).toFile(),
                    stateJson(state));
            if (Files.exists(target)) {
                FileTrees.delete(target);
            }
            FileTrees.moveAtomically(temp, target);
            temp = null;
        } catch (IOException | UncheckedIOException e) {
            throw new PtuneException("cannot write the checkpoint " + target + ": " + e, e);
        } finally {
            if (temp != null) {
                FileTrees.deleteOrWarn(temp);
            }
        }
        prune(target.getParent(), keepLast);
        return target;
    }

    /**
     * {@code path} itself when it is a checkpoint, else the newest {@code checkpoint-<step>} in it.
     *
     * @throws PtuneException if there is none
     */
    public static Path resolve(Path path) {
        if (Files.isRegularFile(path.resolve(STATE_FILE))) {
            return path;
        }
        List<Path> found = checkpoints(path);
        if (found.isEmpty()) {
            throw new PtuneException(path + " is not a training checkpoint (no " + STATE_FILE + ") and holds no"
                    + " checkpoint-<step> directory; pass what --checkpoint-dir (or Trainer.saveCheckpoints) wrote");
        }
        return found.get(found.size() - 1);
    }

    /** Reads {@code dir/trainer_state.json}. */
    public static State readState(Path dir) {
        Path file = dir.resolve(STATE_FILE);
        if (!Files.isRegularFile(file)) {
            throw new PtuneException(dir + " has no " + STATE_FILE + "; is it a checkpoint-<step> directory?");
        }
        JsonNode json = JsonFiles.readObject(file, PtuneException::new, "");
        String format = json.path("format").asText("");
        if (!FORMAT.equals(format)) {
            throw new PtuneException(file + ": format '" + format + "' is not " + FORMAT
                    + " (a checkpoint of another ptune version?)");
        }
        JsonNode settingsNode = json.get("settings");
        if (settingsNode == null || !settingsNode.isObject()) {
            throw new PtuneException(file + " has no 'settings' object; the checkpoint is damaged");
        }
        Map<String, String> settings = new LinkedHashMap<>();
        settingsNode.properties().forEach(e -> settings.put(e.getKey(), e.getValue().asText()));
        return new State(required(json, "stage", file).asInt(), required(json, "step", file).asLong(),
                required(json, "stage_step", file).asLong(), required(json, "epoch", file).asInt(),
                required(json, "consumed_micro_batches", file).asLong(),
                required(json, "first_loss", file).asDouble(), required(json, "last_loss", file).asDouble(),
                required(json, "total_tokens", file).asLong(), settings);
    }

    /** Loads every trainable parameter's moments from {@code dir/optimizer.safetensors}. */
    static void restoreMoments(Path dir, PromptModule prompt, NativePromptTrainer trainer) {
        Path file = dir.resolve(OPTIMIZER_FILE);
        if (!Files.isRegularFile(file)) {
            throw new PtuneException(dir + " has no " + OPTIMIZER_FILE + "; the checkpoint is incomplete");
        }
        SafetensorsFile moments = Safetensors.open(file);
        for (String name : prompt.parameterNames()) {
            if (!prompt.isTrainable(name)) {
                continue;
            }
            for (String suffix : List.of(".exp_avg", ".exp_avg_sq")) {
                if (!moments.tensors().containsKey(name + suffix)) {
                    throw new PtuneException(file + " has no tensor '" + name + suffix
                            + "'; the checkpoint was written for another prompt");
                }
            }
            trainer.writeMoments(name, moments.readFloat(name + ".exp_avg").data(),
                    moments.readFloat(name + ".exp_avg_sq").data());
        }
    }

    /** Fails naming the first setting of this run that differs from the checkpoint's. */
    static void checkSettings(State state, Map<String, String> current, Path dir) {
        for (Map.Entry<String, String> entry : current.entrySet()) {
            String saved = state.settings().get(entry.getKey());
            if (!entry.getValue().equals(saved)) {
                throw new InvalidConfigException(entry.getKey(), "is " + entry.getValue() + " here but "
                        + (saved == null ? "not recorded" : saved) + " in the checkpoint " + dir
                        + "; resume with the settings and data it was made with (or start a new run warm-started"
                        + " from its adapter: init from-adapter:" + dir.resolve(ADAPTER_DIR) + ")");
            }
        }
    }

    private static ObjectNode stateJson(State state) {
        ObjectNode json = JsonFiles.MAPPER.createObjectNode();
        json.put("format", FORMAT);
        json.put("stage", state.stage());
        json.put("step", state.step());
        json.put("stage_step", state.stageStep());
        json.put("epoch", state.epoch());
        json.put("consumed_micro_batches", state.consumedMicroBatches());
        json.put("first_loss", state.firstLoss());
        json.put("last_loss", state.lastLoss());
        json.put("total_tokens", state.totalTokens());
        ObjectNode settings = json.putObject("settings");
        state.settings().entrySet().stream().sorted(Map.Entry.comparingByKey())
                .forEach(e -> settings.put(e.getKey(), e.getValue()));
        return json;
    }

    private static JsonNode required(JsonNode json, String field, Path file) {
        JsonNode node = json.get(field);
        if (node == null || !node.isNumber()) {
            throw new PtuneException(file + ": field '" + field + "' is missing or not a number; the checkpoint"
                    + " is damaged");
        }
        return node;
    }

    /** The checkpoint-<step> directories in {@code parent}, oldest first. */
    private static List<Path> checkpoints(Path parent) {
        if (!Files.isDirectory(parent)) {
            return List.of();
        }
        try (Stream<Path> entries = Files.list(parent)) {
            return entries.filter(p -> NAME.matcher(p.getFileName().toString()).matches())
                    .filter(p -> Files.isRegularFile(p.resolve(STATE_FILE)))
                    .sorted(Comparator.comparingLong(TrainingCheckpoint::stepOf))
                    .toList();
        } catch (IOException e) {
            throw new PtuneException("cannot list " + parent + ": " + e, e);
        }
    }

    private static long stepOf(Path checkpoint) {
        Matcher m = NAME.matcher(checkpoint.getFileName().toString());
        return m.matches() ? Long.parseLong(m.group(1)) : -1;
    }

    private static void prune(Path parent, int keepLast) {
        List<Path> all = checkpoints(parent);
        for (int i = 0; i < all.size() - keepLast; i++) {
            try {
                FileTrees.delete(all.get(i));
            } catch (IOException e) {
                throw new PtuneException("cannot remove the old checkpoint " + all.get(i) + ": " + e, e);
            }
        }
    }
}
