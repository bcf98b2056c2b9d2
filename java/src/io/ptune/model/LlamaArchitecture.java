package io.ptune.model;

import static io.ptune.model.ConfigFields.checkSpecialIds;
import static io.ptune.model.ConfigFields.optionalBoolean;
import static io.ptune.model.ConfigFields.optionalDouble;
import static io.ptune.model.ConfigFields.optionalInt;
import static io.ptune.model.ConfigFields.optionalLong;
import static io.ptune.model.ConfigFields.optionalTokenId;
import static io.ptune.model.ConfigFields.requiredInt;
import static io.ptune.model.ConfigFields.requirePositive;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.ModelFormatException;
import io.ptune.internal.JsonFiles;
import io.ptune.nativebridge.ModelSpecOptions;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * The shape of a Llama-family decoder (Llama, Mistral, Qwen2), as read from a Hugging Face
 * {@code config.json}. Defaults follow Hugging Face's {@code LlamaConfig} so that a config that
 * loads in transformers describes the same network here.
 *
 * @param vocabSize V, rows of the embedding table
 * @param hiddenSize C, width of the residual stream and of every prompt vector
 * @param intermediateSize width of the SwiGLU MLP
 * @param numLayers number of decoder layers
 * @param numHeads query heads per layer
 * @param numKvHeads key/value heads per layer (GQA when smaller than {@code numHeads})
 * @param headDim width of one head; {@code hiddenSize / numHeads} unless config.json says otherwise
 * @param maxPositionEmbeddings the longest sequence the model was trained for
 * @param rmsNormEps epsilon of every RMSNorm
 * @param ropeTheta base of the rotary embedding frequencies
 * @param ropeScaling how the rotary frequencies are scaled (transformers' rope_type)
 * @param tieWordEmbeddings whether the LM head reuses the embedding table
 * @param attentionBias whether the attention projections carry biases. For {@code qwen2}, whose
 *     config has no such key, this is true and means q/k/v biases only (as in transformers' Qwen2)
 * @param mlpBias whether the MLP projections carry biases
 * @param bosTokenId beginning-of-sequence id, or null when the config has none
 * @param eosTokenIds every id that ends generation (config.json allows an int or a list)
 * @param padTokenId padding id, or null when the config has none
 * @param modelType {@code llama}, {@code mistral} or {@code qwen2}
 * @param slidingWindow sliding-window attention: a query sees only the last {@code slidingWindow}
 *     cache slots (itself included) in the layers from {@code firstSlidingLayer} on; 0 for none
 * @param firstSlidingLayer the first layer with the window (Mistral: 0; Qwen2: max_window_layers,
 *     or where config.json's layer_types turns to "sliding_attention")
 */
public record LlamaArchitecture(
        int vocabSize,
        int hiddenSize,
        int intermediateSize,
        int numLayers,
        int numHeads,
        int numKvHeads,
        int headDim,
        int maxPositionEmbeddings,
        double rmsNormEps,
        double ropeTheta,
        RopeScaling ropeScaling,
        boolean tieWordEmbeddings,
        boolean attentionBias,
        boolean mlpBias,
        Integer bosTokenId,
        List<Long> eosTokenIds,
        Long padTokenId,
        String modelType,
        int slidingWindow,
        int firstSlidingLayer) implements Architecture {

    /**
     * Rotary frequency scaling, as transformers' rope init functions define it.
     *
     * @param type the rope_type
     * @param factor linear and llama3 scaling factor (1 for default)
     * @param lowFreqFactor llama3 {@code low_freq_factor}
     * @param highFreqFactor llama3 {@code high_freq_factor}
     * @param originalMaxPosition llama3 {@code original_max_position_embeddings}
     */
    public record RopeScaling(Type type, double factor, double lowFreqFactor, double highFreqFactor,
            int originalMaxPosition) {
        public static final RopeScaling DEFAULT = new RopeScaling(Type.DEFAULT, 1, 0, 0, 0);

        /** transformers' rope types that ptune implements (in the native RopeType's order). */
        public enum Type {
            /** Plain rotary frequencies. */
            DEFAULT,
            /** Frequencies divided by {@code factor}. */
            LINEAR,
            /** Llama 3.1's banded scaling. */
            LLAMA3
        }

        /** The scaling that {@code node} (rope_parameters / rope_scaling, or null) describes. */
        static RopeScaling fromJson(JsonNode node) {
            if (JsonFiles.isAbsent(node)) {
                return DEFAULT;
            }
            String type = node.path("rope_type").asText(node.path("type").asText("default"));
            return switch (type) {
                case "default" -> DEFAULT;
                case "linear" -> new RopeScaling(Type.LINEAR, positive(node, "factor"), 0, 0, 0);
                case "llama3" -> {
                    double low = positive(node, "low_freq_factor");
                    double high = positive(node, "high_freq_factor");
                    if (!(high > low)) {
                        throw new ModelFormatException("rope scaling " + node + ": high_freq_factor must exceed"
                                + " low_freq_factor");
                    }
                    yield new RopeScaling(Type.LLAMA3, positive(node, "factor"), low, high,
                            (int) positive(node, "original_max_position_embeddings"));
                }
                default -> throw new ModelFormatException("rope scaling " + node + " is not supported yet; ptune"
                        + " implements rope_type default, linear and llama3");
            };
        }

        private static double positive(JsonNode node, String field) {
            JsonNode value = node.get(field);
            if (value == null || !value.isNumber() || !(value.doubleValue() > 0)) {
                throw new ModelFormatException("rope scaling " + node + ": field '" + field
                        + "' must be a positive number");
            }
            return value.doubleValue();
        }
    }

    /** The model types whose layout the native Llama implementation covers. */
    public static final Set<String> SUPPORTED_MODEL_TYPES = Set.of("llama", "mistral", "qwen2");

    public LlamaArchitecture {
        requirePositive("vocab_size", vocabSize);
        requirePositive("hidden_size", hiddenSize);
        requirePositive("intermediate_size", intermediateSize);
        requirePositive("num_hidden_layers", numLayers);
        requirePositive("num_attention_heads", numHeads);
        requirePositive("num_key_value_heads", numKvHeads);
        requirePositive("head_dim", headDim);
        requirePositive("max_position_embeddings", maxPositionEmbeddings);
        if (numHeads % numKvHeads != 0) {
            throw new ModelFormatException("num_attention_heads (" + numHeads
                    + ") must be a multiple of num_key_value_heads (" + numKvHeads
                    + "); check config.json");
        }
        if (headDim % 2 != 0) {
            throw new ModelFormatException(
                    "head_dim must be even for rotary embeddings, got " + headDim);
        }
        requirePositive("rms_norm_eps", rmsNormEps);
        requirePositive("rope_theta", ropeTheta);
        if (modelType == null || !SUPPORTED_MODEL_TYPES.contains(modelType)) {
            throw new ModelFormatException("model_type " + modelType + " is not supported; ptune"
                    + " supports " + SUPPORTED_MODEL_TYPES.stream().sorted().toList());
        }
        eosTokenIds = checkSpecialIds(bosTokenId, eosTokenIds, padTokenId, vocabSize);
    }

    @Override
    public boolean causal() {
        return true;
    }

    @Override
    public ModelSpecOptions nativeSpec() {
        return new ModelSpecOptions(ModelSpecOptions.Family.LLAMA, vocabSize, hiddenSize, intermediateSize, numLayers,
                numHeads, numKvHeads, headDim, maxPositionEmbeddings, rmsNormEps, ModelSpecOptions.Activation.SILU,
                tieWordEmbeddings, new ModelSpecOptions.Rope(ropeTheta, ropeScaling.type().ordinal(),
                        ropeScaling.factor(), ropeScaling.lowFreqFactor(), ropeScaling.highFreqFactor(),
                        ropeScaling.originalMaxPosition()),
                attentionBias, mlpBias, slidingWindow, firstSlidingLayer, 0);
    }

    /** The number of query heads that share one key/value head. */
    public int queryGroups() {
        return numHeads / numKvHeads;
    }

    /**
     * Reads a Llama-family {@code config.json} (any family: {@link Architecture#fromConfigJson}).
     *
     * @throws ModelFormatException if the file is missing or malformed, a required field is absent,
     *     the model type is not a Llama-family decoder, or it uses a feature not supported yet; the
     *     message names the file and the field
     */
    public static LlamaArchitecture fromConfigJson(Path configJson) {
        Architecture arch = Architecture.fromConfigJson(configJson);
        if (arch instanceof LlamaArchitecture llama) {
            return llama;
        }
        throw new ModelFormatException(configJson + ": model_type '" + arch.modelType() + "' is not a Llama-family"
                + " decoder " + SUPPORTED_MODEL_TYPES.stream().sorted().toList());
    }

    /** Reads an already parsed Llama-family {@code config.json} object; errors do not name a file. */
    public static LlamaArchitecture fromJson(JsonNode root) {
        String modelType = root.path("model_type").asText(null);
        if (modelType == null) {
            throw new ModelFormatException("field 'model_type' is required (one of "
                    + SUPPORTED_MODEL_TYPES.stream().sorted().toList() + ") but missing");
        }
        modelType = modelType.toLowerCase(Locale.ROOT);
        if (!SUPPORTED_MODEL_TYPES.contains(modelType)) {
            throw new ModelFormatException("model_type '" + modelType + "' is not supported; ptune"
                    + " runs Llama-family decoders: " + SUPPORTED_MODEL_TYPES.stream().sorted().toList());
        }
        // transformers 5 writes rope_theta and the scaling into rope_parameters; older configs have
        // rope_theta at the top and the scaling in rope_scaling.
        double ropeTheta = optionalDouble(root, "rope_theta", 10000.0);
        JsonNode ropeParameters = root.get("rope_parameters");
        if (!JsonFiles.isAbsent(ropeParameters)) {
            if (!ropeParameters.isObject()) {
                throw new ModelFormatException("field 'rope_parameters' must be an object, got " + ropeParameters);
            }
            ropeTheta = optionalDouble(ropeParameters, "rope_theta", ropeTheta);
        }
        JsonNode scalingNode = !JsonFiles.isAbsent(ropeParameters) ? ropeParameters : root.get("rope_scaling");
        RopeScaling ropeScaling = RopeScaling.fromJson(scalingNode);

        int hidden = requiredInt(root, "hidden_size");
        int heads = requiredInt(root, "num_attention_heads");
        int vocab = requiredInt(root, "vocab_size");
        int intermediate = requiredInt(root, "intermediate_size");
        int layers = requiredInt(root, "num_hidden_layers");
        int kvHeads = optionalInt(root, "num_key_value_heads", heads);
        Integer explicitHeadDim = optionalInt(root, "head_dim", null);
        int headDim;
        if (explicitHeadDim != null) {
            headDim = explicitHeadDim;
        } else {
            if (heads <= 0 || hidden % heads != 0) {
                throw new ModelFormatException("hidden_size (" + hidden
                        + ") must be divisible by num_attention_heads (" + heads
                        + ") when head_dim is not given");
            }
            headDim = hidden / heads;
        }
        // Qwen2 has q/k/v biases by construction and no attention_bias key in its config.
        boolean attentionBias = optionalBoolean(root, "attention_bias", modelType.equals("qwen2"));
        int[] window = slidingWindow(root, modelType, layers);
        Long bos = optionalLong(root, "bos_token_id");
        // Some converted Llama configs carry pad_token_id -1 to mean "none".
        Long pad = optionalTokenId(root, "pad_token_id");
        return new LlamaArchitecture(
                vocab,
                hidden,
                intermediate,
                layers,
                heads,
                kvHeads,
                headDim,
                optionalInt(root, "max_position_embeddings", 2048),
                optionalDouble(root, "rms_norm_eps", 1e-6),
                ropeTheta,
                ropeScaling,
                optionalBoolean(root, "tie_word_embeddings", false),
                attentionBias,
                optionalBoolean(root, "mlp_bias", false),
                ConfigFields.intTokenId("bos_token_id", bos),
                ConfigFields.tokenIdList(root, "eos_token_id"),
                pad,
                modelType,
                window[0],
                window[1]);
    }

    /**
     * {window, first windowed layer} as transformers decides them: config.json's layer_types when
     * present (full layers first, then sliding ones), else Qwen2's use_sliding_window +
     * max_window_layers, else Mistral's sliding_window on every layer. {0, layers} for none.
     */
    private static int[] slidingWindow(JsonNode root, String modelType, int layers) {
        Integer window = optionalInt(root, "sliding_window", null);
        JsonNode layerTypes = root.get("layer_types");
        int first;
        if (!JsonFiles.isAbsent(layerTypes)) {
            if (!layerTypes.isArray() || layerTypes.size() != layers) {
                throw new ModelFormatException("field 'layer_types' must list one type per layer (" + layers
                        + "), got " + layerTypes);
            }
            first = layers;
            for (int i = 0; i < layers; i++) {
                String type = layerTypes.get(i).asText("");
                boolean sliding = type.equals("sliding_attention");
                if (!sliding && !type.equals("full_attention")) {
                    throw new ModelFormatException("layer_types[" + i + "] '" + type + "' is not supported; ptune"
                            + " runs full_attention and sliding_attention layers");
                }
                if (sliding && first == layers) {
                    first = i;
                } else if (!sliding && first < layers) {
                    throw new ModelFormatException("layer_types " + layerTypes + " alternates full and sliding"
                            + " attention; ptune supports sliding layers only after all full ones");
                }
            }
        } else if (modelType.equals("qwen2")) {
            boolean used = root.path("use_sliding_window").asBoolean(false);
            first = used && window != null ? Math.min(layers, optionalInt(root, "max_window_layers", 28)) : layers;
        } else if (modelType.equals("mistral")) {
            first = window != null ? 0 : layers;
        } else {
            first = layers;
        }
        if (first == layers) {
            return new int[] {0, layers};
        }
        if (window == null || window <= 0) {
            throw new ModelFormatException("sliding-window layers need a positive 'sliding_window', got "
                    + root.get("sliding_window"));
        }
        return new int[] {window, first};
    }

}
