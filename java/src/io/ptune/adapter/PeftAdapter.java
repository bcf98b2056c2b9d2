package io.ptune.adapter;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.ptune.AdapterException;
import io.ptune.internal.JsonFiles;
import io.ptune.model.LlamaArchitecture;
import io.ptune.prompt.PromptInit;
import io.ptune.prompt.PromptTuningConfig;
import io.ptune.prompt.SoftPrompt;
import io.ptune.adapter.Safetensors.FloatTensor;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A prompt-tuning adapter in Hugging Face PEFT's layout, so that Python PEFT loads what ptune
 * saves ({@code PeftModel.from_pretrained(model, dir)}) and ptune loads what PEFT saves:
 *
 * <pre>
 *   adapter_config.json        PromptTuningConfig fields; peft_type "PROMPT_TUNING"
 *   adapter_model.safetensors  one tensor "prompt_embeddings", F32 [num_virtual_tokens, token_dim]
 * </pre>
 *
 * PEFT before 0.14 rejects unknown keys in adapter_config.json, so {@link #save} writes only the
 * fields of PEFT's PromptTuningConfig that every version knows. {@link #load} accepts the keys of
 * every PEFT version and ignores, with a warning, keys it does not know.
 *
 * @param prompt the soft prompt, (n, C)
 * @param promptTuningInit PEFT's init name: RANDOM, SAMPLE_VOCAB or TEXT
 * @param promptTuningInitText the TEXT init's text, else null
 * @param tokenizerNameOrPath the tokenizer PEFT loads for TEXT init, else null
 * @param baseModelNameOrPath the model the adapter was trained on, or null when unknown
 */
public record PeftAdapter(SoftPrompt prompt, String promptTuningInit, String promptTuningInitText,
        String tokenizerNameOrPath, String baseModelNameOrPath) {

    private static final Logger LOG = LoggerFactory.getLogger(PeftAdapter.class);

    public static final String CONFIG_FILE = "adapter_config.json";
    public static final String WEIGHTS_FILE = "adapter_model.safetensors";
    public static final String TENSOR_NAME = "prompt_embeddings";

    /** Keys some PEFT version writes for prompt tuning that ptune does not need; ignored quietly. */
    private static final Set<String> KNOWN_UNUSED_KEYS = Set.of(
            "revision", "auto_mapping", "modules_to_save", "tokenizer_kwargs", "peft_version",
            "inference_mode");

    private static final Set<String> USED_KEYS = Set.of(
            "peft_type", "task_type", "num_virtual_tokens", "token_dim", "num_transformer_submodules",
            "num_attention_heads", "num_layers", "prompt_tuning_init", "prompt_tuning_init_text",
            "tokenizer_name_or_path", "base_model_name_or_path");

    private static final Set<String> PEFT_INIT_NAMES = Set.of("RANDOM", "SAMPLE_VOCAB", "TEXT");

    public PeftAdapter {
        Objects.requireNonNull(prompt, "prompt");
        promptTuningInit = promptTuningInit == null ? "RANDOM" : promptTuningInit;
    }

    /**
     * An adapter for a prompt trained with {@code config} on the model in {@code modelDir}.
     * LABELS has no PEFT equivalent and is recorded as RANDOM (PEFT only uses the init when it
     * creates a new prompt, never when it loads one).
     */
    public static PeftAdapter of(SoftPrompt prompt, PromptTuningConfig config, Path modelDir) {
        String model = modelDir == null ? null : modelDir.toAbsolutePath().normalize().toString();
        PromptInit init = config == null ? PromptInit.RANDOM : config.init();
        return switch (init) {
            case TEXT -> new PeftAdapter(prompt, "TEXT", config.initText(), model, model);
            case SAMPLE_VOCAB -> new PeftAdapter(prompt, "SAMPLE_VOCAB", null, null, model);
            case RANDOM, LABELS, FROM_ADAPTER -> new PeftAdapter(prompt, "RANDOM", null, null, model);
        };
    }

    /**
     * Writes the adapter into {@code dir}, atomically: both files are written into a temporary
     * directory beside {@code dir} first, so a failure leaves nothing half-written. A missing or
     * empty {@code dir} is replaced by a rename; in a directory that already holds other files
     * only the two adapter files are replaced (each by an atomic rename).
     *
     * @param architecture the model the prompt belongs to (for token_dim, heads and layers)
     */
    public void save(Path dir, LlamaArchitecture architecture) {
        if (prompt.dim() != architecture.hiddenSize()) {
            throw new AdapterException("cannot save a prompt of width " + prompt.dim()
                    + " for a model with hidden_size " + architecture.hiddenSize());
        }
        Path target = dir.toAbsolutePath().normalize();
        Map<String, AdapterFiles.FileWriter> files = new LinkedHashMap<>();
        files.put(WEIGHTS_FILE, file -> {
            Map<String, FloatTensor> tensors = new LinkedHashMap<>();
            tensors.put(TENSOR_NAME, new FloatTensor(
                    new long[] {prompt.numVirtualTokens(), prompt.dim()}, prompt.values()));
            Safetensors.write(file, tensors, Map.of("format", "pt"));
        });
        files.put(CONFIG_FILE, file -> Files.write(file, JsonFiles.MAPPER.writeValueAsBytes(configJson(architecture))));
        AdapterFiles.writeAtomically(target, files);
        LOG.info("saved prompt adapter ({} virtual tokens x {}) to {}", prompt.numVirtualTokens(),
                prompt.dim(), target);
    }

    /** The adapter_config.json object: exactly the keys of PEFT's PromptTuningConfig, sorted as PEFT does. */
    ObjectNode configJson(LlamaArchitecture architecture) {
        ObjectNode json = JsonFiles.MAPPER.createObjectNode();
        json.put("base_model_name_or_path", baseModelNameOrPath);
        json.put("inference_mode", true);
        json.put("num_attention_heads", architecture.numHeads());
        json.put("num_layers", architecture.numLayers());
        json.put("num_transformer_submodules", 1);
        json.put("num_virtual_tokens", prompt.numVirtualTokens());
        json.put("peft_type", "PROMPT_TUNING");
        json.put("prompt_tuning_init", PEFT_INIT_NAMES.contains(promptTuningInit) ? promptTuningInit : "RANDOM");
        json.put("prompt_tuning_init_text", promptTuningInitText);
        json.put("task_type", "CAUSAL_LM");
        json.put("token_dim", prompt.dim());
        json.put("tokenizer_name_or_path", tokenizerNameOrPath);
        return json;
    }

    /**
     * Reads an adapter written by ptune or by Python PEFT (any version; {@code prompt_embeddings}
     * may be F32, F16 or BF16) and checks that it fits {@code architecture}.
     *
     * @throws AdapterException naming the file and field if the adapter is missing, malformed, of a
     *     method ptune does not support, or made for a model of another width
     */
    public static PeftAdapter load(Path dir, LlamaArchitecture architecture) {
        Objects.requireNonNull(architecture, "architecture");
        JsonNode config = AdapterFiles.readConfig(dir);
        Path configFile = dir.resolve(CONFIG_FILE);
        String peftType = textField(config, "peft_type", configFile);
        if (peftType == null) {
            throw new AdapterException(configFile + ": field 'peft_type' is required (PROMPT_TUNING)");
        }
        switch (peftType) {
            case "PROMPT_TUNING" -> { }
            case "P_TUNING", "PREFIX_TUNING", PromptAdapter.DYNAMIC_PEFT_TYPE -> throw new AdapterException(configFile
                    + ": peft_type " + peftType + " is not a plain soft prompt; load it with PromptAdapter.load,"
                    + " which handles every prompt method");
            case "MULTITASK_PROMPT_TUNING", "ADAPTION_PROMPT", "CPT" ->
                    throw new AdapterException(configFile + ": peft_type " + peftType
                            + " is not supported; ptune loads PROMPT_TUNING, P_TUNING and PREFIX_TUNING adapters");
            default -> throw new AdapterException(configFile + ": peft_type " + peftType
                    + " is not a prompt-learning method; ptune loads PROMPT_TUNING adapters");
        }
        warnAboutUnknownKeys(configFile, config);
        String taskType = textField(config, "task_type", configFile);
        if (taskType != null && !taskType.equals("CAUSAL_LM")) {
            LOG.warn("{}: task_type is {}, not CAUSAL_LM; using the prompt with a causal LM anyway",
                    configFile, taskType);
        }
        int numVirtualTokens = requiredPositiveInt(config, "num_virtual_tokens", configFile);
        int tokenDim = requiredPositiveInt(config, "token_dim", configFile);
        Integer submodules = optionalInt(config, "num_transformer_submodules", configFile);
        if (submodules != null && submodules != 1) {
            throw new AdapterException(configFile + ": num_transformer_submodules is " + submodules
                    + "; adapters of encoder-decoder models (2 prompt blocks) are not supported, ptune"
                    + " expects 1 for a causal LM");
        }
        if (tokenDim != architecture.hiddenSize()) {
            throw new AdapterException(configFile + ": token_dim is " + tokenDim + " but the model's"
                    + " hidden_size is " + architecture.hiddenSize()
                    + "; was this adapter trained for another model?");
        }
        Integer heads = optionalInt(config, "num_attention_heads", configFile);
        Integer layers = optionalInt(config, "num_layers", configFile);
        if ((heads != null && heads != architecture.numHeads())
                || (layers != null && layers != architecture.numLayers())) {
            LOG.warn("{}: written for a model with {} heads and {} layers, loading into one with {}"
                    + " and {}; a prompt-tuning adapter only depends on token_dim, but check that this"
                    + " is the intended base model", configFile, heads, layers,
                    architecture.numHeads(), architecture.numLayers());
        }

        float[] values = readPromptEmbeddings(dir, numVirtualTokens, tokenDim);
        SoftPrompt prompt;
        try {
            prompt = new SoftPrompt(numVirtualTokens, tokenDim, values);
        } catch (IllegalArgumentException e) {
            throw new AdapterException(dir.resolve(WEIGHTS_FILE) + ": " + TENSOR_NAME + " "
                    + e.getMessage(), e);
        }
        return new PeftAdapter(prompt,
                textField(config, "prompt_tuning_init", configFile),
                textField(config, "prompt_tuning_init_text", configFile),
                textField(config, "tokenizer_name_or_path", configFile),
                textField(config, "base_model_name_or_path", configFile));
    }

    private static float[] readPromptEmbeddings(Path dir, int numVirtualTokens, int tokenDim) {
        return PromptAdapter.readPromptEmbeddings(dir, new long[] {numVirtualTokens, tokenDim},
                "adapter_config.json says num_virtual_tokens " + numVirtualTokens + " and token_dim " + tokenDim);
    }

    private static void warnAboutUnknownKeys(Path configFile, JsonNode config) {
        Set<String> unknown = new TreeSet<>();
        for (Iterator<String> it = config.fieldNames(); it.hasNext(); ) {
            String key = it.next();
            if (!USED_KEYS.contains(key) && !KNOWN_UNUSED_KEYS.contains(key)) {
                unknown.add(key);
            }
        }
        if (!unknown.isEmpty()) {
            LOG.warn("{}: ignoring keys ptune does not know: {}", configFile, unknown);
        }
    }

    private static String textField(JsonNode config, String field, Path file) {
        return AdapterFiles.textField(config, field, file);
    }

    private static Integer optionalInt(JsonNode config, String field, Path file) {
        return AdapterFiles.optionalInt(config, field, file);
    }

    private static int requiredPositiveInt(JsonNode config, String field, Path file) {
        return AdapterFiles.requiredPositiveInt(config, field, file);
    }
}
