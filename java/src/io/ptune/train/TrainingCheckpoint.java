package io.ptune.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.AdapterException;
import io.ptune.CheckpointException;
import io.ptune.InvalidConfigException;
import io.ptune.adapter.PromptAdapter;
import io.ptune.adapter.Safetensors;
import io.ptune.adapter.Safetensors.FloatTensor;
import io.ptune.adapter.Safetensors.SafetensorsFile;
import io.ptune.internal.FileTrees;
import io.ptune.internal.JsonFiles;
import io.ptune.nativebridge.NativePromptTrainer;
import io.ptune.prompt.PromptModule;
import com.fasterxml.jackson.databind.node.ArrayNode;
import io.ptune.prompt.PromptInitSpec;
import io.ptune.prompt.PromptMethodConfig;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.lang.reflect.RecordComponent;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Optional;
import java.util.TreeMap;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A training checkpoint: everything {@link Trainer#resume} needs to continue a run exactly where it
 * stopped, in a directory {@code checkpoint-<step>/} holding
 *
 * <pre>
 *   adapter/                 the prompt as an adapter (PromptAdapter.save: encoders, stage-2 layers)
 *   optimizer.safetensors    AdamW moments, "&lt;parameter&gt;.exp_avg" / "&lt;parameter&gt;.exp_avg_sq"
 *   trainer_state.json       stage, step, data position (epoch, micro-batches used), loss so far,
 *                            the settings the run was made with and the prompt's configuration
 *                            (both checked on resume); with a dev set, "early_stopping": the dev
 *                            set's size, the best evaluation, evaluations since, the last one and
 *                            whether the run stopped early
 *   best_prompt.safetensors  with early stopping (patience &gt; 0), once a best evaluation exists:
 *                            the parameters of the best prompt, by parameter name
 *   manifest.json            the size and SHA-256 of every other file, written last
 * </pre>
 *
 * The data order is rebuilt from the seed and the epoch number, so nothing of the data is stored.
 * A checkpoint directory is written beside its final name, flushed to the disk (files and
 * directories), and renamed into place, so a crash never leaves a half-written one under the final
 * name; the manifest catches what a crash, a full disk or a hand can still do to the files later.
 */
public final class TrainingCheckpoint {
    public static final String ADAPTER_DIR = "adapter";
    public static final String OPTIMIZER_FILE = "optimizer.safetensors";
    /** The parameters of the best prompt so far, with early stopping ({@link DevState}). */
    public static final String BEST_PROMPT_FILE = "best_prompt.safetensors";
    public static final String STATE_FILE = "trainer_state.json";
    public static final String MANIFEST_FILE = "manifest.json";
    static final String FORMAT = "ptune-training-checkpoint/1";
    /** The run's resolved configuration ({@link Trainer#recordArguments}), when the caller gave one. */
    public static final String ARGUMENTS_FILE = "training_args.json";
    static final String MANIFEST_FORMAT = "ptune-checkpoint-manifest/1";
    private static final Logger LOG = LoggerFactory.getLogger(TrainingCheckpoint.class);
    /** Temporary directories of checkpoint writes that a killed process left behind. */
    private static final Pattern TEMP_NAME = Pattern.compile("\\.checkpoint-\\d+\\.tmp-.*");
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
     * @param prompt the configuration the prompt was created with ({@link #promptSettings}; a
     *     resumed run that names one must name this one)
     * @param dev the dev evaluations so far, or null when the run evaluates no dev set
     */
    public record State(int stage, long step, long stageStep, int epoch, long consumedMicroBatches,
            double firstLoss, double lastLoss, long totalTokens, Map<String, String> settings,
            Map<String, String> prompt, DevState dev) {
        public State {
            settings = Map.copyOf(settings);
            prompt = Map.copyOf(prompt);
        }
    }

    /**
     * The dev evaluations of a run so far ({@code "early_stopping"} in {@link #STATE_FILE}): what
     * early stopping needs to decide as the uninterrupted run would. With patience &gt; 0 and
     * {@code bestStep > 0}, the best prompt's parameters are in {@link #BEST_PROMPT_FILE}.
     *
     * @param devExamples dev examples evaluated (after tokenisation); a resumed run must have as many
     * @param bestStep the step of the best evaluation, 0 before the first
     * @param best the metric at {@code bestStep}, NaN before the first evaluation
     * @param evaluationsSince evaluations after the best one
     * @param last the metric at the latest evaluation, NaN before the first
     * @param stoppedEarly whether the run stopped early at {@link State#step()}: a resumed run only
     *     restores the best prompt
     */
    public record DevState(int devExamples, long bestStep, double best, int evaluationsSince, double last,
            boolean stoppedEarly) {}

    private TrainingCheckpoint() {}

    /** The directory name of the checkpoint after {@code step}. */
    public static String directoryName(long step) {
        return "checkpoint-" + step;
    }

    /**
     * Writes a checkpoint of {@code prompt} and {@code trainer} as {@code parent/checkpoint-<step>}
     * and removes the oldest ones beyond {@code keepLast}.
     */
    static Path write(Path parent, PromptModule prompt, NativePromptTrainer trainer, State state, JsonNode arguments,
            Map<String, float[]> bestPrompt, int keepLast) {
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
            if (bestPrompt != null) {
                Map<String, FloatTensor> best = new LinkedHashMap<>();
                bestPrompt.forEach((name, values) -> best.put(name, new FloatTensor(prompt.shape(name), values)));
                Safetensors.write(temp.resolve(BEST_PROMPT_FILE), best, Map.of("format", FORMAT));
            }
            Files.write(temp.resolve(STATE_FILE),
                    JsonFiles.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsBytes(stateJson(state)));
            if (arguments != null) {
                Files.write(temp.resolve(ARGUMENTS_FILE),
                        JsonFiles.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsBytes(arguments));
            }
            FileTrees.syncTree(temp);
            // Last: a manifest that verifies means every file it lists was complete on the disk.
            Files.write(temp.resolve(MANIFEST_FILE),
                    JsonFiles.MAPPER.writerWithDefaultPrettyPrinter().writeValueAsBytes(manifestJson(temp)));
            FileTrees.syncFile(temp.resolve(MANIFEST_FILE));
            FileTrees.syncDirectory(temp);
            if (Files.exists(target)) {
                FileTrees.delete(target);
            }
            FileTrees.moveAtomically(temp, target);
            temp = null;
            FileTrees.syncDirectory(target.getParent());
        } catch (IOException e) {
            throw new CheckpointException("cannot write the checkpoint " + target + ": " + FileTrees.describe(e)
                    + "; the earlier checkpoints are unchanged", e);
        } catch (AdapterException e) {
            String cause = e.getCause() instanceof IOException io ? FileTrees.describe(io) : e.getMessage();
            throw new CheckpointException("cannot write the checkpoint " + target + ": " + cause
                    + "; the earlier checkpoints are unchanged", e);
        } catch (UncheckedIOException e) {
            throw new CheckpointException("cannot write the checkpoint " + target + ": "
                    + FileTrees.describe(e.getCause()) + "; the earlier checkpoints are unchanged", e);
        } finally {
            if (temp != null) {
                FileTrees.deleteOrWarn(temp);
            }
        }
        prune(target.getParent(), keepLast);
        return target;
    }

    /**
     * {@code path} itself when it is a checkpoint (verified against its manifest), else the newest
     * {@code checkpoint-<step>} in it that verifies (damaged ones are skipped with a warning).
     *
     * @throws CheckpointException if {@code path} is a damaged checkpoint, or holds no valid one
     */
    public static Path resolve(Path path) {
        if (isCheckpoint(path)) {
            verify(path);
            return path;
        }
        return newestValid(path).orElseThrow(() -> new CheckpointException(path + " is not a training checkpoint"
                + " (no " + STATE_FILE + ") and holds no valid checkpoint-<step> directory; pass what"
                + " --checkpoint-dir (or Trainer.saveCheckpoints) wrote"));
    }

    /**
     * The newest {@code checkpoint-<step>} directory in {@code parent} whose files match its
     * manifest; each newer one that does not is named in a warning and skipped. Empty when there is
     * none (or {@code parent} does not exist).
     */
    public static Optional<Path> newestValid(Path parent) {
        List<Path> all = new ArrayList<>(checkpoints(parent));
        for (int i = all.size() - 1; i >= 0; i--) {
            try {
                verify(all.get(i));
                return Optional.of(all.get(i));
            } catch (CheckpointException e) {
                LOG.warn("skipping a damaged checkpoint: {}", e.getMessage());
            }
        }
        return Optional.empty();
    }

    /**
     * Checks every file of checkpoint {@code dir} against its manifest (present, same size, same
     * SHA-256, nothing unlisted) and that its state can be read.
     *
     * @throws CheckpointException naming the first file that is missing, truncated or changed
     */
    public static void verify(Path dir) {
        Path manifestFile = dir.resolve(MANIFEST_FILE);
        if (!Files.isRegularFile(manifestFile)) {
            throw new CheckpointException(manifestFile + " is missing: the checkpoint is half-written or damaged"
                    + " (or was written by a ptune without manifests)");
        }
        JsonNode manifest = JsonFiles.readObject(manifestFile, CheckpointException::new, "");
        if (!MANIFEST_FORMAT.equals(manifest.path("format").asText(""))) {
            throw new CheckpointException(manifestFile + ": format '" + manifest.path("format").asText("")
                    + "' is not " + MANIFEST_FORMAT);
        }
        JsonNode files = manifest.get("files");
        if (files == null || !files.isArray()) {
            throw new CheckpointException(manifestFile + " has no 'files' list; the checkpoint is damaged");
        }
        Map<String, JsonNode> listed = new TreeMap<>();
        for (JsonNode entry : files) {
            String name = entry.path("path").asText("");
            Path file = dir.resolve(name).normalize();
            if (name.isEmpty() || !file.startsWith(dir.normalize()) || file.equals(dir.normalize())
                    || !entry.path("size").isIntegralNumber() || !entry.path("sha256").isTextual()) {
                throw new CheckpointException(manifestFile + " has a malformed entry " + entry
                        + "; the checkpoint is damaged");
            }
            listed.put(name, entry);
        }
        Map<String, Path> present = relativeFiles(dir);
        present.remove(MANIFEST_FILE);
        for (String name : present.keySet()) {
            if (!listed.containsKey(name)) {
                throw new CheckpointException(present.get(name) + " is not listed in " + manifestFile
                        + "; the checkpoint was changed after it was written");
            }
        }
        for (Map.Entry<String, JsonNode> entry : listed.entrySet()) {
            Path file = dir.resolve(entry.getKey());
            if (!present.containsKey(entry.getKey())) {
                throw new CheckpointException(file + " is missing (listed in " + manifestFile
                        + "); the checkpoint is damaged");
            }
            long size = entry.getValue().get("size").asLong();
            long actual;
            try {
                actual = Files.size(file);
            } catch (IOException e) {
                throw new CheckpointException("cannot read " + file + ": " + e, e);
            }
            if (actual != size) {
                throw new CheckpointException(file + " has " + actual + " bytes but " + manifestFile + " says "
                        + size + "; the file is truncated or half-written");
            }
            if (!sha256(file).equals(entry.getValue().get("sha256").asText())) {
                throw new CheckpointException(file + " does not match its SHA-256 in " + manifestFile
                        + "; the file was changed after the checkpoint was written");
            }
        }
        readState(dir);
    }

    /** Whether {@code path} is a checkpoint directory itself (not a folder of them). */
    private static boolean isCheckpoint(Path path) {
        return Files.isRegularFile(path.resolve(STATE_FILE)) || Files.isRegularFile(path.resolve(MANIFEST_FILE))
                || NAME.matcher(String.valueOf(path.getFileName())).matches();
    }

    /**
     * Removes the temporary directories of checkpoint writes that a killed process left in
     * {@code parent}.
     */
    static void removeStaleTemporaries(Path parent) {
        if (!Files.isDirectory(parent)) {
            return;
        }
        try (Stream<Path> entries = Files.list(parent)) {
            for (Path stale : entries.filter(p -> TEMP_NAME.matcher(p.getFileName().toString()).matches()).toList()) {
                LOG.info("removing {}, left by an interrupted checkpoint write", stale);
                FileTrees.deleteOrWarn(stale);
            }
        } catch (IOException e) {
            throw new CheckpointException("cannot list " + parent + ": " + e, e);
        }
    }

    /**
     * The configuration a prompt was created with, one entry per field (plus its method), in the
     * form checkpoints record and {@link #checkPrompt} compares. Field names are the config
     * records' component names ({@code numVirtualTokens}, {@code encoderType}, ...).
     */
    public static Map<String, String> promptSettings(PromptMethodConfig config) {
        Map<String, String> out = new TreeMap<>();
        out.put("method", config.method().cliName());
        for (RecordComponent component : config.getClass().getRecordComponents()) {
            Object value;
            try {
                value = component.getAccessor().invoke(config);
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException("cannot read " + component.getName() + " of " + config, e);
            }
            out.put(component.getName(), value instanceof PromptInitSpec spec ? spec.toSpecString()
                    : String.valueOf(value));
        }
        return out;
    }

    /**
     * Fails naming the first field where {@code expected} (the prompt a resumed run was asked for)
     * differs from the prompt the checkpoint's run was created with.
     */
    static void checkPrompt(State state, PromptMethodConfig expected, Path dir) {
        Map<String, String> wanted = promptSettings(expected);
        if (!wanted.get("method").equals(state.prompt().get("method"))) {
            throw new InvalidConfigException("method", "is " + wanted.get("method") + " here but "
                    + state.prompt().get("method") + " in the checkpoint " + dir + "; resume with the method the"
                    + " run was started with");
        }
        for (Map.Entry<String, String> entry : wanted.entrySet()) {
            String saved = state.prompt().get(entry.getKey());
            if (!entry.getValue().equals(saved)) {
                throw new InvalidConfigException(entry.getKey(), "is " + entry.getValue() + " here but "
                        + (saved == null ? "not recorded" : saved) + " in the checkpoint " + dir
                        + "; resume with the prompt flags the run was started with (or leave them out)");
            }
        }
    }

    /**
     * The resolved configuration recorded in checkpoint {@code dir} ({@link #ARGUMENTS_FILE}), or
     * empty when the run recorded none.
     */
    public static Optional<JsonNode> readArguments(Path dir) {
        Path file = dir.resolve(ARGUMENTS_FILE);
        if (!Files.isRegularFile(file)) {
            return Optional.empty();
        }
        return Optional.of(JsonFiles.readObject(file, CheckpointException::new, ""));
    }

    /** Reads {@code dir/trainer_state.json}. */
    public static State readState(Path dir) {
        Path file = dir.resolve(STATE_FILE);
        if (!Files.isRegularFile(file)) {
            throw new CheckpointException(dir + " has no " + STATE_FILE + "; is it a checkpoint-<step> directory?");
        }
        JsonNode json = JsonFiles.readObject(file, CheckpointException::new, "");
        String format = json.path("format").asText("");
        if (!FORMAT.equals(format)) {
            throw new CheckpointException(file + ": format '" + format + "' is not " + FORMAT
                    + " (a checkpoint of another ptune version?)");
        }
        return new State(required(json, "stage", file).asInt(), required(json, "step", file).asLong(),
                required(json, "stage_step", file).asLong(), required(json, "epoch", file).asInt(),
                required(json, "consumed_micro_batches", file).asLong(),
                required(json, "first_loss", file).asDouble(), required(json, "last_loss", file).asDouble(),
                required(json, "total_tokens", file).asLong(), stringMap(json, "settings", file),
                stringMap(json, "prompt", file), devState(json, file));
    }

    /** The {@code "early_stopping"} object of a state file, or null when the run had no dev set. */
    private static DevState devState(JsonNode state, Path file) {
        JsonNode json = state.get("early_stopping");
        if (json == null) {
            return null;
        }
        if (!json.isObject() || !json.path("stopped_early").isBoolean()) {
            throw new CheckpointException(file + ": 'early_stopping' is not an object with a boolean"
                    + " 'stopped_early'; the checkpoint is damaged");
        }
        return new DevState(required(json, "dev_examples", file).asInt(), required(json, "best_step", file).asLong(),
                metricOrNaN(json, "best", file), required(json, "evaluations_since", file).asInt(),
                metricOrNaN(json, "last", file), json.get("stopped_early").asBoolean());
    }

    /** A metric recorded as a number, or null before the first evaluation (read as NaN). */
    private static double metricOrNaN(JsonNode json, String field, Path file) {
        JsonNode node = json.get(field);
        if (node != null && node.isNull()) {
            return Double.NaN;
        }
        return required(json, field, file).asDouble();
    }

    /**
     * The best prompt's parameters from {@code dir/best_prompt.safetensors}, one per name of
     * {@code prompt}, each checked against the parameter's size.
     *
     * @throws CheckpointException naming the file and the missing or mis-sized tensor
     */
    static Map<String, float[]> readBestPrompt(Path dir, PromptModule prompt) {
        Path file = dir.resolve(BEST_PROMPT_FILE);
        if (!Files.isRegularFile(file)) {
            throw new CheckpointException(dir + " has no " + BEST_PROMPT_FILE + " but its " + STATE_FILE + " records"
                    + " a best dev evaluation with early stopping; the checkpoint is incomplete");
        }
        SafetensorsFile tensors = Safetensors.open(file);
        Map<String, float[]> out = new LinkedHashMap<>();
        for (String name : prompt.parameterNames()) {
            if (!tensors.tensors().containsKey(name)) {
                throw new CheckpointException(file + " has no tensor '" + name + "'; the checkpoint was written for"
                        + " another prompt");
            }
            FloatTensor tensor = tensors.readFloat(name);
            if (!Arrays.equals(tensor.shape(), prompt.shape(name))) {
                throw new CheckpointException(file + ": tensor '" + name + "' has shape "
                        + Arrays.toString(tensor.shape()) + " but the prompt's parameter has "
                        + Arrays.toString(prompt.shape(name)) + "; the checkpoint was written for another prompt");
            }
            out.put(name, tensor.data());
        }
        return out;
    }

    private static Map<String, String> stringMap(JsonNode json, String field, Path file) {
        JsonNode node = json.get(field);
        if (node == null || !node.isObject()) {
            throw new CheckpointException(file + " has no '" + field + "' object; the checkpoint is damaged");
        }
        Map<String, String> out = new LinkedHashMap<>();
        node.properties().forEach(e -> out.put(e.getKey(), e.getValue().asText()));
        return out;
    }

    /** Loads every trainable parameter's moments from {@code dir/optimizer.safetensors}. */
    static void restoreMoments(Path dir, PromptModule prompt, NativePromptTrainer trainer) {
        Path file = dir.resolve(OPTIMIZER_FILE);
        if (!Files.isRegularFile(file)) {
            throw new CheckpointException(dir + " has no " + OPTIMIZER_FILE + "; the checkpoint is incomplete");
        }
        SafetensorsFile moments = Safetensors.open(file);
        for (String name : prompt.parameterNames()) {
            if (!prompt.isTrainable(name)) {
                continue;
            }
            for (String suffix : List.of(".exp_avg", ".exp_avg_sq")) {
                if (!moments.tensors().containsKey(name + suffix)) {
                    throw new CheckpointException(file + " has no tensor '" + name + suffix
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
        ObjectNode prompt = json.putObject("prompt");
        state.prompt().entrySet().stream().sorted(Map.Entry.comparingByKey())
                .forEach(e -> prompt.put(e.getKey(), e.getValue()));
        DevState dev = state.dev();
        if (dev != null) {
            ObjectNode early = json.putObject("early_stopping");
            early.put("dev_examples", dev.devExamples());
            early.put("best_step", dev.bestStep());
            putMetric(early, "best", dev.best());
            early.put("evaluations_since", dev.evaluationsSince());
            putMetric(early, "last", dev.last());
            early.put("stopped_early", dev.stoppedEarly());
        }
        return json;
    }

    /** {@code value} as a number, or null when NaN (no evaluation yet; JSON has no NaN). */
    private static void putMetric(ObjectNode json, String field, double value) {
        if (Double.isNaN(value)) {
            json.putNull(field);
        } else {
            json.put(field, value);
        }
    }

    /** The manifest of the files in {@code dir}: path, size and SHA-256 of each. */
    private static ObjectNode manifestJson(Path dir) {
        ObjectNode json = JsonFiles.MAPPER.createObjectNode();
        json.put("format", MANIFEST_FORMAT);
        ArrayNode files = json.putArray("files");
        for (Map.Entry<String, Path> file : relativeFiles(dir).entrySet()) {
            try {
                files.addObject().put("path", file.getKey()).put("size", Files.size(file.getValue()))
                        .put("sha256", sha256(file.getValue()));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return json;
    }

    /** Every regular file below {@code dir}, by its '/'-separated path relative to {@code dir}. */
    private static Map<String, Path> relativeFiles(Path dir) {
        try (Stream<Path> paths = Files.walk(dir)) {
            Map<String, Path> out = new TreeMap<>();
            paths.filter(Files::isRegularFile).forEach(p -> out.put(dir.relativize(p).toString().replace('\\', '/'), p));
            return out;
        } catch (IOException | UncheckedIOException e) {
            throw new CheckpointException("cannot list " + dir + ": " + e, e);
        }
    }

    private static String sha256(Path file) {
        try (InputStream in = new DigestInputStream(Files.newInputStream(file), MessageDigest.getInstance("SHA-256"))) {
            in.transferTo(OutputStream.nullOutputStream());
            return HexFormat.of().formatHex(((DigestInputStream) in).getMessageDigest().digest());
        } catch (IOException e) {
            throw new CheckpointException("cannot read " + file + ": " + e, e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JDK has no SHA-256", e);
        }
    }

    private static JsonNode required(JsonNode json, String field, Path file) {
        JsonNode node = json.get(field);
        if (node == null || !node.isNumber()) {
            throw new CheckpointException(file + ": field '" + field + "' is missing or not a number; the checkpoint"
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
                    .filter(Files::isDirectory)
                    .sorted(Comparator.comparingLong(TrainingCheckpoint::stepOf))
                    .toList();
        } catch (IOException e) {
            throw new CheckpointException("cannot list " + parent + ": " + e, e);
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
                throw new CheckpointException("cannot remove the old checkpoint " + all.get(i) + ": " + e, e);
            }
        }
    }
}
