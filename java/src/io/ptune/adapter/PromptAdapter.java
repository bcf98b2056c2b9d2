package io.ptune.adapter;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.AdapterException;
import io.ptune.InvalidConfigException;
import io.ptune.adapter.Safetensors.FloatTensor;
import io.ptune.adapter.Safetensors.SafetensorsFile;
import io.ptune.internal.JsonFiles;
import io.ptune.model.Model;
import io.ptune.model.Architecture;
import io.ptune.prompt.CompositePromptConfig;
import io.ptune.prompt.DynamicPromptConfig;
import io.ptune.prompt.PTuningConfig;
import io.ptune.prompt.PrefixTuningConfig;
import io.ptune.prompt.PromptBlock;
import io.ptune.prompt.PromptEncoderType;
import io.ptune.prompt.PromptInit;
import io.ptune.prompt.PromptInitSpec;
import io.ptune.prompt.PromptMethodConfig;
import io.ptune.prompt.PromptModule;
import io.ptune.prompt.PromptTuningConfig;
import io.ptune.prompt.SoftPrompt;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Adapters of every prompt method in Hugging Face PEFT's layout, plus clearly named extra files
 * for the state PEFT has no slot for. What {@link #save} writes:
 *
 * <pre>
 *   method          adapter_config.json               adapter_model.safetensors           extra files
 *   prompt tuning   PROMPT_TUNING, PromptTuningConfig  prompt_embeddings [n, C]             -
 *   P-tuning        P_TUNING, PromptEncoderConfig      prompt_embeddings [n, C] = encoder   ptune_prompt_encoder.safetensors
 *                                                      output                              (embedding.weight, mlp_head.*, lstm_head.*)
 *   prefix tuning   PREFIX_TUNING, PrefixTuningConfig  prompt_embeddings [n, 2·L·token_dim] ptune_prefix_encoder.safetensors
 *                   (GQA: token_dim = head_dim·kv      (after the projection)              (with prefix_projection: embedding.weight,
 *                   heads, num_attention_heads = kv)                                       transform.*)
 *   composite       PROMPT_TUNING                      prompt_embeddings = blocks stacked   ptune_composite.json (the blocks)
 *   dynamic         PTUNE_DYNAMIC_PROMPT (ours)        -                                    ptune_dynamic_prompt.safetensors
 *                                                                                          (embedding.weight, generator.*)
 *   + stage 2       (as above)                         (as above)                          ptune_layers.safetensors (layer weights,
 *                                                                                          named as in the checkpoint)
 * </pre>
 *
 * adapter_config.json carries exactly the fields of the method's PEFT config that PEFT versions
 * before 0.14 know (they reject unknown keys), {@code inference_mode} true. The extra files'
 * tensor names are those of the PEFT module's {@code state_dict()} (the prompt encoder's
 * {@code embedding.weight}, {@code mlp_head.0.weight}, …), so a PEFT user can load them into
 * {@code model.prompt_encoder["default"]} to continue training. PEFT itself ignores the extra
 * files: it loads P-tuning and prefix adapters for inference from {@code prompt_embeddings} alone,
 * and so does {@link #load} for PEFT's own adapters (a P-tuning adapter becomes a fixed prompt of
 * its encoder output; a prefix adapter a prefix without projection). Stage-2 layer weights are
 * ptune's own: PEFT does not apply them.
 *
 * <p>Every save is atomic (a temporary directory, then renames). The base model files are never
 * written.
 */
public final class PromptAdapter {
    private static final Logger LOG = LoggerFactory.getLogger(PromptAdapter.class);

    public static final String CONFIG_FILE = AdapterFiles.CONFIG_FILE;
    public static final String WEIGHTS_FILE = AdapterFiles.WEIGHTS_FILE;
    public static final String TENSOR_NAME = "prompt_embeddings";
    /** P-tuning encoder weights (PEFT saves only the encoder output). */
    public static final String P_TUNING_ENCODER_FILE = "ptune_prompt_encoder.safetensors";
    /** Prefix-tuning projection weights (PEFT saves only the projected prefix). */
    public static final String PREFIX_ENCODER_FILE = "ptune_prefix_encoder.safetensors";
    /** The blocks of a composite prompt. */
    public static final String COMPOSITE_FILE = "ptune_composite.json";
    /** The parameters of a dynamic prompt (E and the generator). */
    public static final String DYNAMIC_FILE = "ptune_dynamic_prompt.safetensors";
    /** Weights of the layers unfrozen in stage 2, named as in the model's checkpoint. */
    public static final String LAYERS_FILE = "ptune_layers.safetensors";
    /** Our own peft_type for dynamic prompts (PEFT has no such method and will refuse it). */
    public static final String DYNAMIC_PEFT_TYPE = "PTUNE_DYNAMIC_PROMPT";
    /** A classification task's settings and labels (io.ptune.classify). */
    public static final String CLASSIFIER_FILE = "ptune_classifier.json";
    /** A classification head saved without a prompt (a linear probe). */
    public static final String HEAD_FILE = "ptune_head.safetensors";
    /** A soft verbalizer's class vectors. */
    public static final String SOFT_VERBALIZER_FILE = "ptune_soft_verbalizer.safetensors";
    /** PEFT's task type of sequence classification, whose head lives in adapter_model.safetensors. */
    public static final String SEQ_CLS = "SEQ_CLS";

    /**
     * What a task adds to a prompt adapter: PEFT's {@code task_type} (null = the model's default),
     * tensors saved beside {@code prompt_embeddings} in adapter_model.safetensors (PEFT's
     * {@code modules_to_save}, such as {@code base_model.classifier.weight}), and extra files
     * ({@link #CLASSIFIER_FILE}, {@link #HEAD_FILE}, {@link #SOFT_VERBALIZER_FILE}).
     */
    public record Extras(String taskType, Map<String, FloatTensor> weights, Map<String, byte[]> files) {
        public static final Extras NONE = new Extras(null, Map.of(), Map.of());

        public Extras {
            weights = Map.copyOf(weights);
            files = Map.copyOf(files);
            for (String name : files.keySet()) {
                if (!Set.of(CLASSIFIER_FILE, HEAD_FILE, SOFT_VERBALIZER_FILE).contains(name)) {
                    throw new IllegalArgumentException("'" + name + "' is not an extra file of an adapter");
                }
            }
            for (String name : weights.keySet()) {
                if (name.equals(TENSOR_NAME)) {
                    throw new IllegalArgumentException(TENSOR_NAME + " is the prompt's own tensor");
                }
            }
        }
    }

    private static final String LAYERS_METADATA = "ptune_unfrozen_layers";
    private static final String LAYER_RATE_METADATA = "ptune_layer_learning_rate";
    private static final String SEED_METADATA = "ptune_seed";

    /** Keys of every PEFT version's prompt-learning configs; others are ignored with a warning. */
    private static final Set<String> KNOWN_KEYS = Set.of("peft_type", "task_type", "num_virtual_tokens",
            "token_dim", "num_transformer_submodules", "num_attention_heads", "num_layers", "prompt_tuning_init",
            "prompt_tuning_init_text", "tokenizer_name_or_path", "base_model_name_or_path", "inference_mode",
            "revision", "auto_mapping", "modules_to_save", "tokenizer_kwargs", "peft_version",
            "encoder_reparameterization_type", "encoder_hidden_size", "encoder_num_layers", "encoder_dropout",
            "prefix_projection", "init_weights", "generator_hidden_size");

    private PromptAdapter() {}

    // ------------------------------------------------------------------------------------------
    // Saving

    /**
     * Writes {@code prompt} as an adapter into {@code dir} (see the class comment for the files),
     * atomically. The adapter records the prompt's model directory as base_model_name_or_path.
     */
    public static void save(PromptModule prompt, Path dir) {
        save(prompt, dir, prompt.model().modelDir().toAbsolutePath().normalize().toString());
    }

    /**
     * Writes {@code prompt} as an adapter into {@code dir}, recording {@code baseModelNameOrPath}
     * (e.g. a Hugging Face hub id) as the model it belongs to.
     */
    public static void save(PromptModule prompt, Path dir, String baseModelNameOrPath) {
        save(prompt, dir, baseModelNameOrPath, Extras.NONE);
    }

    /**
     * Writes {@code prompt} with a task's {@code extras} (see {@link Extras}) into {@code dir},
     * atomically.
     */
    public static void save(PromptModule prompt, Path dir, String baseModelNameOrPath, Extras extras) {
        Objects.requireNonNull(prompt, "prompt");
        Objects.requireNonNull(extras, "extras");
        Model model = prompt.model();
        Architecture arch = model.architecture();
        String base = baseModelNameOrPath;
        PromptMethodConfig config = prompt.config();
        int n = prompt.numVirtualTokens();
        Map<String, AdapterFiles.FileWriter> files = new LinkedHashMap<>();
        ObjectNode json;
        boolean inPeftWeights = !(config instanceof DynamicPromptConfig);
        if (!inPeftWeights && !extras.weights().isEmpty()) {
            throw new IllegalArgumentException("a dynamic prompt has no adapter_model.safetensors to hold "
                    + extras.weights().keySet());
        }
        if (config instanceof PromptTuningConfig c) {
            json = promptTuningJson(arch, n, c.initialization(), base);
            files.put(WEIGHTS_FILE, peftWeights(prompt, extras.weights()));
        } else if (config instanceof CompositePromptConfig c) {
            json = promptTuningJson(arch, n, PromptInitSpec.random(), base);
            files.put(WEIGHTS_FILE, peftWeights(prompt, extras.weights()));
            files.put(COMPOSITE_FILE, file -> Files.write(file, JsonFiles.MAPPER.writeValueAsBytes(compositeJson(c))));
        } else if (config instanceof PTuningConfig c) {
            json = common(arch, arch.numHeads(), n, "P_TUNING", arch.hiddenSize(), base);
            json.put("encoder_dropout", c.encoderDropout());
            json.put("encoder_hidden_size", c.resolvedEncoderHiddenSize(arch.hiddenSize()));
            json.put("encoder_num_layers", c.encoderNumLayers());
            json.put("encoder_reparameterization_type", c.encoderType().name());
            files.put(WEIGHTS_FILE, peftWeights(prompt, extras.weights()));
            // The seed also drives LSTM dropout masks: kept so a resumed run draws the same ones.
            files.put(P_TUNING_ENCODER_FILE, parameterFile(prompt, prompt.methodParameterNames(),
                    Map.of(SEED_METADATA, Long.toString(c.seed()))));
        } else if (config instanceof PrefixTuningConfig c) {
            int tokenDim = PromptModule.prefixTokenDim(arch);
            // PEFT overwrites token_dim and num_attention_heads with the key/value shape (GQA).
            json = common(arch, arch.numKvHeads(), n, "PREFIX_TUNING", tokenDim, base);
            json.put("encoder_hidden_size", c.resolvedEncoderHiddenSize(tokenDim));
            json.put("prefix_projection", c.prefixProjection());
            files.put(WEIGHTS_FILE, peftWeights(prompt, extras.weights()));
            if (c.prefixProjection()) {
                files.put(PREFIX_ENCODER_FILE, parameterFile(prompt, prompt.methodParameterNames(), Map.of()));
            }
        } else if (config instanceof DynamicPromptConfig c) {
            json = common(arch, arch.numHeads(), n, DYNAMIC_PEFT_TYPE, arch.hiddenSize(), base);
            json.put("generator_hidden_size", c.resolvedGeneratorHiddenSize(arch.hiddenSize()));
            files.put(DYNAMIC_FILE, parameterFile(prompt, prompt.methodParameterNames(), Map.of()));
        } else {
            throw new IllegalArgumentException("unknown prompt config " + config.getClass().getName());
        }
        if (prompt.unfrozenLayers() > 0) {
            files.put(LAYERS_FILE, parameterFile(prompt, prompt.layerParameterNames(), Map.of(
                    LAYERS_METADATA, Integer.toString(prompt.unfrozenLayers()),
                    LAYER_RATE_METADATA, Double.toString(prompt.layerLearningRate()))));
        }
        if (extras.taskType() != null) {
            json.put("task_type", extras.taskType());
        }
        extras.files().forEach((name, bytes) -> files.put(name, file -> Files.write(file, bytes)));
        ObjectNode sorted = sortedKeys(json);
        files.put(CONFIG_FILE, file -> Files.write(file, JsonFiles.MAPPER.writeValueAsBytes(sorted)));
        Path target = dir.toAbsolutePath().normalize();
        AdapterFiles.writeAtomically(target, files);
        LOG.info("saved {} adapter ({} virtual tokens{}) to {}", config.method().cliName(), n,
                prompt.unfrozenLayers() > 0 ? ", top " + prompt.unfrozenLayers() + " layers" : "", target);
    }

    /**
     * Writes a task's files without a prompt (a classification head alone, e.g. a linear probe)
     * into {@code dir}, atomically; adapter files of an earlier save there are removed.
     */
    public static void saveWithoutPrompt(Path dir, Extras extras) {
        if (!extras.weights().isEmpty() || extras.files().isEmpty()) {
            throw new IllegalArgumentException("without a prompt, everything goes into extra files");
        }
        Map<String, AdapterFiles.FileWriter> files = new LinkedHashMap<>();
        extras.files().forEach((name, bytes) -> files.put(name, file -> Files.write(file, bytes)));
        Path target = dir.toAbsolutePath().normalize();
        AdapterFiles.writeAtomically(target, files);
        LOG.info("saved {} to {}", extras.files().keySet(), target);
    }

    /**
     * Reads tensor {@code name} of a task's file {@code fileName} in adapter {@code dir} (e.g. a
     * classification head), checking its shape; {@code what} says where the shape comes from.
     *
     * @throws AdapterException naming the file when it, the tensor or the shape is wrong
     */
    public static float[] readTaskTensor(Path dir, String fileName, String name, long[] shape, String what) {
        return AdapterFiles.readTensor(AdapterFiles.open(dir.resolve(fileName), ""), name, shape, what);
    }

    /** The shape of tensor {@code name} in a task's file, or null when the file lacks it. */
    public static long[] taskTensorShape(Path dir, String fileName, String name) {
        Safetensors.TensorInfo info = AdapterFiles.open(dir.resolve(fileName), "").tensors().get(name);
        return info == null ? null : info.shape();
    }

    /**
     * The task type PEFT wraps this model with for prompt learning: CAUSAL_LM for decoders;
     * FEATURE_EXTRACTION for encoders (PEFT has no masked-LM task type, and its feature-extraction
     * model runs the whole wrapped model, MLM head included).
     */
    static String taskType(Architecture arch) {
        return arch.causal() ? "CAUSAL_LM" : "FEATURE_EXTRACTION";
    }

    /** The fields every PEFT prompt-learning config has (PromptLearningConfig + PeftConfig). */
    private static ObjectNode common(Architecture arch, int heads, int n, String peftType, int tokenDim, String base) {
        ObjectNode json = JsonFiles.MAPPER.createObjectNode();
        json.put("base_model_name_or_path", base);
        json.put("inference_mode", true);
        json.put("num_attention_heads", heads);
        json.put("num_layers", arch.numLayers());
        json.put("num_transformer_submodules", 1);
        json.put("num_virtual_tokens", n);
        json.put("peft_type", peftType);
        json.put("task_type", taskType(arch));
        json.put("token_dim", tokenDim);
        return json;
    }

    private static ObjectNode promptTuningJson(Architecture arch, int n, PromptInitSpec init, String base) {
        ObjectNode json = common(arch, arch.numHeads(), n, "PROMPT_TUNING", arch.hiddenSize(), base);
        // LABELS and FROM_ADAPTER have no PEFT equivalent; PEFT uses the init only for new prompts.
        String peftInit = switch (init.init()) {
            case TEXT -> "TEXT";
            case SAMPLE_VOCAB -> "SAMPLE_VOCAB";
            default -> "RANDOM";
        };
        json.put("prompt_tuning_init", peftInit);
        json.put("prompt_tuning_init_text", init.init() == PromptInit.TEXT ? init.initText() : null);
        json.put("tokenizer_name_or_path", init.init() == PromptInit.TEXT ? base : null);
        return json;
    }

    private static ObjectNode compositeJson(CompositePromptConfig config) {
        ObjectNode json = JsonFiles.MAPPER.createObjectNode();
        json.put("format", "ptune-composite-prompt");
        json.put("version", 1);
        json.put("seed", config.seed());
        ArrayNode blocks = json.putArray("blocks");
        for (PromptBlock block : config.blocks()) {
            blocks.add(block.toJson());
        }
        return json;
    }

    private static ObjectNode sortedKeys(ObjectNode json) {
        ObjectNode sorted = JsonFiles.MAPPER.createObjectNode();
        Set<String> keys = new TreeSet<>();
        json.fieldNames().forEachRemaining(keys::add);
        keys.forEach(key -> sorted.set(key, json.get(key)));
        return sorted;
    }

    private static AdapterFiles.FileWriter peftWeights(PromptModule prompt, Map<String, FloatTensor> extra) {
        Map<String, FloatTensor> tensors = new LinkedHashMap<>();
        tensors.put(TENSOR_NAME, new FloatTensor(prompt.peftEmbeddingsShape(), prompt.peftEmbeddings()));
        tensors.putAll(extra);
        return file -> Safetensors.write(file, tensors, Map.of("format", "pt"));
    }

    /** A safetensors writer of the named parameters, under their PEFT state_dict names. */
    private static AdapterFiles.FileWriter parameterFile(PromptModule prompt, List<String> names,
            Map<String, String> extraMetadata) {
        Map<String, FloatTensor> tensors = new LinkedHashMap<>();
        for (String name : names) {
            tensors.put(fileKey(name), new FloatTensor(prompt.shape(name), prompt.read(name)));
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        metadata.put("format", "pt");
        metadata.putAll(extraMetadata);
        return file -> Safetensors.write(file, tensors, metadata);
    }

    /** The seed recorded in an extra file's metadata (42, the default, for files without one). */
    private static long savedSeed(Path file) {
        String seed = AdapterFiles.open(file, "").metadata().get(SEED_METADATA);
        if (seed == null) {
            return 42;
        }
        try {
            return Long.parseLong(seed);
        } catch (NumberFormatException e) {
            throw new AdapterException(file + ": metadata " + SEED_METADATA + " '" + seed + "' is not a whole number");
        }
    }

    /** The native "embedding" parameter is PEFT's module {@code embedding} (an nn.Embedding). */
    private static String fileKey(String parameter) {
        return parameter.equals("embedding") ? "embedding.weight" : parameter;
    }

    // ------------------------------------------------------------------------------------------
    // Loading

    /**
     * Loads an adapter of any method, written by ptune or by Python PEFT, for inference: every
     * parameter frozen. PEFT's P-tuning adapters (no encoder file) become a fixed prompt of their
     * encoder output, PEFT's prefix adapters a prefix without projection holding their
     * {@code prompt_embeddings}. Stage-2 layer weights, when present, are applied.
     *
     * @throws AdapterException naming the file and field when the adapter is missing, malformed,
     *     of an unsupported method, or made for another model
     */
    public static PromptModule load(Path dir, Model model) {
        return read(dir, model, false);
    }

    /**
     * Loads an adapter to continue training it: the full method state from the extra files
     * (encoder, projection, generator, composite blocks with their frozen flags and learning
     * rates, stage-2 layers), trainable as when it was saved. Optimizer moments are not part of
     * an adapter: a trainer on the loaded prompt starts them at zero.
     *
     * @throws AdapterException also when the adapter lacks the state to resume (e.g. a P-tuning
     *     adapter written by PEFT, which has only the encoder output; warm-start a new prompt from
     *     it with init FROM_ADAPTER instead)
     */
    public static PromptModule loadForTraining(Path dir, Model model) {
        return read(dir, model, true);
    }

    /**
     * The model an adapter was trained on, as its adapter_config.json records it (a directory or
     * a Hugging Face hub id), or null when it records none: the model to pass to {@link #load}.
     *
     * @throws AdapterException if the directory or its adapter_config.json is missing or malformed
     */
    public static String baseModelNameOrPath(Path dir) {
        return AdapterFiles.textField(AdapterFiles.readConfig(dir), "base_model_name_or_path",
                dir.resolve(CONFIG_FILE));
    }

    private static PromptModule read(Path dir, Model model, boolean forTraining) {
        Objects.requireNonNull(model, "model");
        Architecture arch = model.architecture();
        JsonNode json = AdapterFiles.readConfig(dir);
        Path configFile = dir.resolve(CONFIG_FILE);
        String peftType = requiredPeftType(json, configFile);
        if (!Set.of("PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", DYNAMIC_PEFT_TYPE).contains(peftType)) {
            throw unsupported(configFile, peftType);
        }
        warnAboutUnknownKeys(configFile, json);
        checkTaskType(json, configFile, arch);
        int n = AdapterFiles.requiredPositiveInt(json, "num_virtual_tokens", configFile);
        PromptModule module = switch (peftType) {
            case "PROMPT_TUNING" -> readPromptTuning(dir, json, n, model, forTraining);
            case "P_TUNING" -> readPTuning(dir, json, n, model, forTraining);
            case "PREFIX_TUNING" -> readPrefixTuning(dir, json, n, model, forTraining);
            case DYNAMIC_PEFT_TYPE -> readDynamic(dir, json, n, model);
            default -> throw unsupported(configFile, peftType);
        };
        try {
            if (Files.exists(dir.resolve(LAYERS_FILE))) {
                applyLayers(dir.resolve(LAYERS_FILE), module, arch);
            }
            if (!forTraining) {
                module.freeze();
            }
            LOG.info("loaded {} adapter from {} ({} virtual tokens{})", peftType, dir, n,
                    module.unfrozenLayers() > 0 ? ", top " + module.unfrozenLayers() + " layers" : "");
            return module;
        } catch (RuntimeException e) {
            module.close();
            throw e;
        }
    }

    private static PromptModule readPromptTuning(Path dir, JsonNode json, int n, Model model, boolean forTraining) {
        Path configFile = dir.resolve(CONFIG_FILE);
        Architecture arch = model.architecture();
        int dim = arch.hiddenSize();
        checkTokenDim(json, configFile, dim, "the model's hidden_size");
        Integer heads = AdapterFiles.optionalInt(json, "num_attention_heads", configFile);
        Integer layers = AdapterFiles.optionalInt(json, "num_layers", configFile);
        if ((heads != null && heads != arch.numHeads()) || (layers != null && layers != arch.numLayers())) {
            LOG.warn("{}: written for a model with {} heads and {} layers, loading into one with {}"
                    + " and {}; a prompt-tuning adapter only depends on token_dim, but check that this"
                    + " is the intended base model", configFile, heads, layers, arch.numHeads(), arch.numLayers());
        }
        float[] values = readPromptEmbeddings(dir, new long[] {n, dim},
                "adapter_config.json says num_virtual_tokens " + n + " and token_dim " + dim);
        if (Files.exists(dir.resolve(COMPOSITE_FILE))) {
            CompositePromptConfig config = readComposite(dir.resolve(COMPOSITE_FILE), n);
            return withModule(model, config, module -> {
                for (int i = 0; i < config.blocks().size(); i++) {
                    PromptBlock block = config.blocks().get(i);
                    int offset = config.blockOffset(i) * dim;
                    String name = module.blockParameterName(i);
                    module.write(name, Arrays.copyOfRange(values, offset, offset + block.numVirtualTokens() * dim));
                    module.setTrainable(name, !block.frozen(), block.learningRate() == null ? 0 : block.learningRate());
                }
            });
        }
        PromptTuningConfig config = PromptTuningConfig.builder().numVirtualTokens(n)
                .initialization(recordedInit(json, configFile)).build();
        return withModule(model, config, module -> module.write("embedding", values));
    }

    /** The init an adapter records (only informative once a prompt exists); RANDOM when unclear. */
    private static PromptInitSpec recordedInit(JsonNode json, Path configFile) {
        String init = AdapterFiles.textField(json, "prompt_tuning_init", configFile);
        String text = AdapterFiles.textField(json, "prompt_tuning_init_text", configFile);
        if ("TEXT".equals(init) && text != null && !text.isBlank()) {
            return PromptInitSpec.text(text);
        }
        if ("SAMPLE_VOCAB".equals(init)) {
            return PromptInitSpec.sampleVocab();
        }
        return PromptInitSpec.random();
    }

    private static PromptModule readPTuning(Path dir, JsonNode json, int n, Model model, boolean forTraining) {
        Path configFile = dir.resolve(CONFIG_FILE);
        Architecture arch = model.architecture();
        int dim = arch.hiddenSize();
        checkTokenDim(json, configFile, dim, "the model's hidden_size");
        float[] values = readPromptEmbeddings(dir, new long[] {n, dim},
                "adapter_config.json says num_virtual_tokens " + n + " and token_dim " + dim);
        Path encoderFile = dir.resolve(P_TUNING_ENCODER_FILE);
        if (!Files.exists(encoderFile)) {
            if (forTraining) {
                throw new AdapterException(dir + " is a P_TUNING adapter without " + P_TUNING_ENCODER_FILE
                        + " (PEFT saves only the encoder output), so its encoder cannot be trained further; use it"
                        + " for inference, or warm-start a new prompt from it (init from-adapter:" + dir + ")");
            }
            LOG.info("{}: P_TUNING adapter without encoder weights; using its encoder output as a fixed prompt", dir);
            PromptTuningConfig config = PromptTuningConfig.builder().numVirtualTokens(n).build();
            return withModule(model, config, module -> module.write("embedding", values));
        }
        String type = AdapterFiles.textField(json, "encoder_reparameterization_type", configFile);
        PromptEncoderType encoderType;
        try {
            encoderType = type == null ? PromptEncoderType.MLP
                    : PromptEncoderType.valueOf(type.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new AdapterException(configFile + ": encoder_reparameterization_type '" + type
                    + "' is not MLP or LSTM");
        }
        Integer hidden = AdapterFiles.optionalInt(json, "encoder_hidden_size", configFile);
        Integer layers = AdapterFiles.optionalInt(json, "encoder_num_layers", configFile);
        Double dropout = AdapterFiles.optionalNumber(json, "encoder_dropout", configFile);
        PTuningConfig config;
        try {
            config = new PTuningConfig(n, encoderType, hidden,
                    layers == null ? PTuningConfig.DEFAULT_ENCODER_NUM_LAYERS : layers,
                    dropout == null ? 0.0 : dropout, PromptInitSpec.random(), savedSeed(encoderFile));
        } catch (InvalidConfigException e) {
            throw new AdapterException(configFile + ": " + e.getMessage(), e);
        }
        return withModule(model, config, module -> {
            loadParameters(encoderFile, module, module.methodParameterNames());
            checkAgrees(encoderFile, module.peftEmbeddings(), values);
        });
    }

    private static PromptModule readPrefixTuning(Path dir, JsonNode json, int n, Model model,
            boolean forTraining) {
        Path configFile = dir.resolve(CONFIG_FILE);
        Architecture arch = model.architecture();
        int tokenDim = PromptModule.prefixTokenDim(arch);
        Integer layers = AdapterFiles.optionalInt(json, "num_layers", configFile);
        if (layers != null && layers != arch.numLayers()) {
            throw new AdapterException(configFile + ": num_layers is " + layers + " but the model has "
                    + arch.numLayers() + " layers; a prefix adapter holds one key/value prefix per layer, so it fits"
                    + " only a model of the same depth (was this adapter trained for another model?)");
        }
        Integer tokenDimField = AdapterFiles.optionalInt(json, "token_dim", configFile);
        if (tokenDimField == null) {
            throw new AdapterException(configFile + ": field 'token_dim' is required but missing");
        }
        if (tokenDimField != tokenDim) {
            String gqa = arch.numKvHeads() != arch.numHeads() && tokenDimField == arch.hiddenSize()
                    ? "; the model uses grouped-query attention (" + arch.numKvHeads() + " key/value heads of "
                            + arch.headDim() + "), so a prefix has width head_dim * num_key_value_heads = " + tokenDim
                            + " (PEFT >= 0.13 writes that; older PEFT wrote hidden_size, which cannot work on GQA)"
                    : "";
            throw new AdapterException(configFile + ": token_dim is " + tokenDimField + " but the model's prefix"
                    + " width (head_dim * num_key_value_heads) is " + tokenDim + gqa
                    + "; was this adapter trained for another model?");
        }
        Integer heads = AdapterFiles.optionalInt(json, "num_attention_heads", configFile);
        if (heads != null && heads != arch.numKvHeads()) {
            throw new AdapterException(configFile + ": num_attention_heads is " + heads + " but the model has "
                    + arch.numKvHeads() + " key/value heads; PEFT splits the prefix into that many heads, so the"
                    + " prefix would be laid out differently (was this adapter trained for another model?)");
        }
        long[] shape = {n, 2L * arch.numLayers() * tokenDim};
        float[] values = readPromptEmbeddings(dir, shape, "adapter_config.json says num_virtual_tokens " + n
                + ", num_layers " + arch.numLayers() + " and token_dim " + tokenDim + " ([n, 2 * num_layers * token_dim])");
        Boolean projection = AdapterFiles.optionalBoolean(json, "prefix_projection", configFile);
        Integer hidden = AdapterFiles.optionalInt(json, "encoder_hidden_size", configFile);
        Path encoderFile = dir.resolve(PREFIX_ENCODER_FILE);
        if (Boolean.TRUE.equals(projection) && Files.exists(encoderFile)) {
            PrefixTuningConfig config;
            try {
                config = new PrefixTuningConfig(n, true, hidden, 42);
            } catch (InvalidConfigException e) {
                throw new AdapterException(configFile + ": " + e.getMessage(), e);
            }
            return withModule(model, config, module -> {
                loadParameters(encoderFile, module, module.methodParameterNames());
                checkAgrees(encoderFile, module.peftEmbeddings(), values);
            });
        }
        if (Boolean.TRUE.equals(projection)) {
            if (forTraining) {
                throw new AdapterException(dir + " is a PREFIX_TUNING adapter with prefix_projection but without "
                        + PREFIX_ENCODER_FILE + " (PEFT saves only the projected prefix), so the projection cannot"
                        + " be trained further; use it for inference, or train its prefix without projection");
            }
            LOG.info("{}: prefix adapter without projection weights; using its projected prefix as it is", dir);
        }
        PrefixTuningConfig config = new PrefixTuningConfig(n, false, null, 42);
        return withModule(model, config, module -> module.write("embedding", values));
    }

    private static PromptModule readDynamic(Path dir, JsonNode json, int n, Model model) {
        Path configFile = dir.resolve(CONFIG_FILE);
        int dim = model.architecture().hiddenSize();
        checkTokenDim(json, configFile, dim, "the model's hidden_size");
        Integer hidden = AdapterFiles.optionalInt(json, "generator_hidden_size", configFile);
        if (hidden == null) {
            throw new AdapterException(configFile + ": field 'generator_hidden_size' is required for "
                    + DYNAMIC_PEFT_TYPE);
        }
        DynamicPromptConfig config;
        try {
            config = new DynamicPromptConfig(n, hidden, PromptInitSpec.random(), 42);
        } catch (InvalidConfigException e) {
            throw new AdapterException(configFile + ": " + e.getMessage(), e);
        }
        Path file = dir.resolve(DYNAMIC_FILE);
        AdapterFiles.open(file, "; a " + DYNAMIC_PEFT_TYPE + " adapter keeps its parameters there");
        return withModule(model, config, module -> loadParameters(file, module, module.methodParameterNames()));
    }

    /** Fills a new module; closes it if filling fails. */
    private static PromptModule withModule(Model model, PromptMethodConfig config,
            java.util.function.Consumer<PromptModule> fill) {
        PromptModule module = PromptModule.uninitialised(model, config);
        try {
            fill.accept(module);
            return module;
        } catch (RuntimeException e) {
            module.close();
            throw e;
        }
    }

    private static CompositePromptConfig readComposite(Path file, int n) {
        JsonNode json = JsonFiles.readObject(file, AdapterException::new, "");
        CompositePromptConfig config;
        try {
            List<PromptBlock> blocks = CompositePromptConfig.blocksFromJson(json.get("blocks"), file);
            JsonNode seed = json.get("seed");
            config = new CompositePromptConfig(blocks, seed != null && seed.canConvertToLong() ? seed.longValue() : 42);
        } catch (InvalidConfigException e) {
            throw new AdapterException(file + ": " + e.getMessage(), e);
        }
        if (config.numVirtualTokens() != n) {
            throw new AdapterException(file + ": the blocks hold " + config.numVirtualTokens()
                    + " virtual tokens but adapter_config.json says num_virtual_tokens " + n
                    + "; the files belong to different adapters");
        }
        return config;
    }

    /**
     * Writes every parameter in {@code names} from {@code file}, which must hold exactly those
     * tensors (under their PEFT state_dict names) with the module's shapes.
     */
    private static void loadParameters(Path file, PromptModule module, List<String> names) {
        SafetensorsFile tensors = AdapterFiles.open(file, "");
        Set<String> expected = new TreeSet<>();
        for (String name : names) {
            expected.add(fileKey(name));
        }
        Set<String> present = new TreeSet<>(tensors.tensors().keySet());
        if (!present.equals(expected)) {
            Set<String> missing = new TreeSet<>(expected);
            missing.removeAll(present);
            Set<String> extra = new TreeSet<>(present);
            extra.removeAll(expected);
            throw new AdapterException(file + " does not match the adapter's configuration"
                    + (missing.isEmpty() ? "" : ": missing " + missing) + (extra.isEmpty() ? "" : ": unexpected " + extra)
                    + "; was it written for another encoder type or size, or another model?");
        }
        for (String name : names) {
            float[] values = AdapterFiles.readTensor(tensors, fileKey(name), module.shape(name),
                    "the adapter's configuration and the model give that shape");
            module.write(name, values);
        }
    }

    /** The extra file must reproduce the prompt_embeddings saved beside it. */
    private static void checkAgrees(Path file, float[] computed, float[] saved) {
        double worst = 0;
        for (int i = 0; i < saved.length; i++) {
            double diff = Math.abs(computed[i] - saved[i]) / Math.max(1.0, Math.abs(saved[i]));
            worst = Math.max(worst, diff);
        }
        if (worst > 1e-4) {
            throw new AdapterException(file + " does not reproduce the prompt_embeddings of " + WEIGHTS_FILE
                    + " (relative difference " + String.format(Locale.ROOT, "%.3g", worst) + "); the two files"
                    + " come from different saves: save the adapter again");
        }
    }

    private static void applyLayers(Path file, PromptModule module, Architecture arch) {
        SafetensorsFile tensors = AdapterFiles.open(file, "");
        Set<Integer> layerIds = new TreeSet<>();
        for (String name : tensors.tensors().keySet()) {
            Matcher m = PromptModule.LAYER_WEIGHT.matcher(name);
            if (!m.matches()) {
                throw new AdapterException(file + ": tensor '" + name + "' is not a transformer layer weight"
                        + " (model.layers.<i>.…, h.<i>.…, encoder.layer.<i>.…)");
            }
            layerIds.add(Integer.parseInt(m.group(1)));
        }
        int total = arch.numLayers();
        int k = layerIds.size();
        Set<Integer> top = new HashSet<>();
        for (int i = total - k; i < total; i++) {
            top.add(i);
        }
        if (k == 0 || !top.equals(layerIds)) {
            throw new AdapterException(file + " holds layers " + layerIds + " but stage-2 training unfreezes the top"
                    + " layers of the model (" + total + " layers); was this adapter trained for another model?");
        }
        String rate = tensors.metadata().get(LAYER_RATE_METADATA);
        double learningRate = 1e-5;
        if (rate != null) {
            try {
                learningRate = Double.parseDouble(rate);
            } catch (NumberFormatException e) {
                throw new AdapterException(file + ": metadata " + LAYER_RATE_METADATA + " '" + rate
                        + "' is not a number");
            }
        }
        module.unfreezeTopLayers(k, learningRate);
        loadParameters(file, module, module.layerParameterNames());
    }

    // ------------------------------------------------------------------------------------------
    // Warm starts (init FROM_ADAPTER)

    /**
     * The input prompt {@code (n, C)} saved in an adapter, to warm-start a new prompt: PEFT's
     * {@code prompt_embeddings} of a prompt-tuning, P-tuning (the encoder output) or composite
     * adapter, or a dynamic prompt's static part E.
     *
     * @param blockName for a composite block: when the adapter is composite and has a block of this
     *     name, only that block is returned; null (or no such block) = the whole prompt
     * @throws AdapterException if the adapter is missing, malformed, of another width, or a prefix
     *     adapter (whose per-layer key/value prefixes are no input prompt)
     */
    public static SoftPrompt readInputPrompt(Path dir, Architecture arch, String blockName) {
        JsonNode json = AdapterFiles.readConfig(dir);
        Path configFile = dir.resolve(CONFIG_FILE);
        String peftType = requiredPeftType(json, configFile);
        int n = AdapterFiles.requiredPositiveInt(json, "num_virtual_tokens", configFile);
        int dim = arch.hiddenSize();
        switch (peftType) {
            case "PROMPT_TUNING", "P_TUNING" -> {
                checkTokenDim(json, configFile, dim, "the model's hidden_size");
                float[] values = readPromptEmbeddings(dir, new long[] {n, dim},
                        "adapter_config.json says num_virtual_tokens " + n + " and token_dim " + dim);
                Path composite = dir.resolve(COMPOSITE_FILE);
                if (blockName != null && peftType.equals("PROMPT_TUNING") && Files.exists(composite)) {
                    CompositePromptConfig config = readComposite(composite, n);
                    for (int i = 0; i < config.blocks().size(); i++) {
                        PromptBlock block = config.blocks().get(i);
                        if (block.name().equals(blockName)) {
                            int offset = config.blockOffset(i) * dim;
                            return new SoftPrompt(block.numVirtualTokens(), dim,
                                    Arrays.copyOfRange(values, offset, offset + block.numVirtualTokens() * dim));
                        }
                    }
                }
                return new SoftPrompt(n, dim, values);
            }
            case DYNAMIC_PEFT_TYPE -> {
                checkTokenDim(json, configFile, dim, "the model's hidden_size");
                SafetensorsFile file = AdapterFiles.open(dir.resolve(DYNAMIC_FILE), "");
                return new SoftPrompt(n, dim, AdapterFiles.readTensor(file, "embedding.weight", new long[] {n, dim},
                        "adapter_config.json says num_virtual_tokens " + n + " and token_dim " + dim));
            }
            case "PREFIX_TUNING" -> throw new AdapterException(dir + " is a PREFIX_TUNING adapter: its"
                    + " prompt_embeddings are per-layer key/value prefixes, not an input prompt; warm-start from a"
                    + " prompt-tuning, P-tuning, composite or dynamic adapter");
            default -> throw unsupported(configFile, peftType);
        }
    }

    // ------------------------------------------------------------------------------------------
    // Shared checks

    private static float[] readPromptEmbeddings(Path dir, long[] shape, String what) {
        String hint = Files.exists(dir.resolve("adapter_model.bin"))
                ? "; only adapter_model.bin (a PyTorch pickle) is there: re-save the adapter with"
                        + " save_pretrained(dir, safe_serialization=True)"
                : "";
        SafetensorsFile file = AdapterFiles.open(dir.resolve(WEIGHTS_FILE), hint);
        return AdapterFiles.readTensor(file, TENSOR_NAME, shape, what);
    }

    private static String requiredPeftType(JsonNode json, Path configFile) {
        String peftType = AdapterFiles.textField(json, "peft_type", configFile);
        if (peftType == null) {
            throw new AdapterException(configFile + ": field 'peft_type' is required (PROMPT_TUNING, P_TUNING,"
                    + " PREFIX_TUNING or " + DYNAMIC_PEFT_TYPE + ")");
        }
        return peftType;
    }

    private static AdapterException unsupported(Path configFile, String peftType) {
        return switch (peftType) {
            case "MULTITASK_PROMPT_TUNING", "ADAPTION_PROMPT", "CPT" -> new AdapterException(configFile
                    + ": peft_type " + peftType + " is not supported; ptune loads PROMPT_TUNING, P_TUNING,"
                    + " PREFIX_TUNING and " + DYNAMIC_PEFT_TYPE + " adapters");
            default -> new AdapterException(configFile + ": peft_type " + peftType + " is not a prompt-learning"
                    + " method; ptune loads PROMPT_TUNING, P_TUNING, PREFIX_TUNING and " + DYNAMIC_PEFT_TYPE
                    + " adapters");
        };
    }

    private static void checkTaskType(JsonNode json, Path configFile, Architecture arch) {
        String taskType = AdapterFiles.textField(json, "task_type", configFile);
        if (taskType != null && !taskType.equals(taskType(arch)) && !taskType.equals(SEQ_CLS)) {
            LOG.warn("{}: task_type is {}, not {} as for this {} model; using the prompt anyway", configFile,
                    taskType, taskType(arch), arch.modelType());
        }
        Integer submodules = AdapterFiles.optionalInt(json, "num_transformer_submodules", configFile);
        if (submodules != null && submodules != 1) {
            throw new AdapterException(configFile + ": num_transformer_submodules is " + submodules
                    + "; adapters of encoder-decoder models (2 prompt blocks) are not supported, ptune"
                    + " expects 1");
        }
    }

    private static void checkTokenDim(JsonNode json, Path configFile, int expected, String what) {
        Integer tokenDim = AdapterFiles.optionalInt(json, "token_dim", configFile);
        if (tokenDim == null) {
            throw new AdapterException(configFile + ": field 'token_dim' is required but missing");
        }
        if (tokenDim != expected) {
            throw new AdapterException(configFile + ": token_dim is " + tokenDim + " but " + what + " is "
                    + expected + "; was this adapter trained for another model?");
        }
    }

    private static void warnAboutUnknownKeys(Path configFile, JsonNode config) {
        Set<String> unknown = new TreeSet<>();
        for (Iterator<String> it = config.fieldNames(); it.hasNext(); ) {
            String key = it.next();
            if (!KNOWN_KEYS.contains(key)) {
                unknown.add(key);
            }
        }
        if (!unknown.isEmpty()) {
            LOG.warn("{}: ignoring keys ptune does not know: {}", configFile, unknown);
        }
    }
}
