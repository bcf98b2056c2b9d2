package io.ptune.model;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.ModelFormatException;
import io.ptune.internal.JsonFiles;
import io.ptune.nativebridge.ModelSpecOptions;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * The shape of a Hugging Face model, one record per family, read from its {@code config.json}
 * with transformers' defaults, so that a config that loads in transformers describes the same
 * network here. Every family answers the questions prompt methods, adapters and generation ask.
 */
public sealed interface Architecture permits LlamaArchitecture, Gpt2Architecture, BloomArchitecture, BertArchitecture {
    /** The {@code model_type} values ptune reads, each mapped to its family. */
    Set<String> MODEL_TYPES = Set.of("llama", "mistral", "qwen2", "gpt2", "bloom", "bert");

    /** config.json's {@code model_type}. */
    String modelType();

    /** V, rows of the embedding table. */
    int vocabSize();

    /** C, the width of the residual stream and of every prompt vector. */
    int hiddenSize();

    int numLayers();

    /** Query heads per layer. */
    int numHeads();

    /** Key/value heads per layer: {@link #numHeads()} but on grouped-query models (Llama family). */
    default int numKvHeads() {
        return numHeads();
    }

    /** The width of one head: {@code hiddenSize / numHeads} unless config.json says otherwise (Llama family). */
    default int headDim() {
        return hiddenSize() / numHeads();
    }

    /** The longest sequence with positions (virtual tokens + text + new tokens); 0 for no limit (ALiBi). */
    int maxPositionEmbeddings();

    /** Decoders attend causally and generate; encoders attend both ways. */
    boolean causal();

    /** Whether the model reads segment ids (BERT's token_type_ids). */
    default boolean usesTokenTypes() {
        return false;
    }

    Integer bosTokenId();

    /** Every id that ends generation (config.json allows an int or a list). */
    List<Long> eosTokenIds();

    Long padTokenId();

    /** The native core's spec of this model. */
    ModelSpecOptions nativeSpec();

    /**
     * Reads a Hugging Face {@code config.json}.
     *
     * @throws ModelFormatException if the file is missing or malformed, a required field is absent,
     *     the model type is not supported, or it uses a feature not supported yet; the message names
     *     the file and the field
     */
    static Architecture fromConfigJson(Path configJson) {
        JsonNode root = JsonFiles.readObject(configJson, ModelFormatException::new,
                "a Hugging Face model directory must contain config.json (the file save_pretrained writes)");
        try {
            return fromJson(root);
        } catch (ModelFormatException e) {
            throw new ModelFormatException(configJson + ": " + e.getMessage(), e);
        }
    }

    /** Reads an already parsed {@code config.json} object; errors do not name a file. */
    static Architecture fromJson(JsonNode root) {
        String modelType = root.path("model_type").asText(null);
        if (modelType == null) {
            throw new ModelFormatException("field 'model_type' is required (one of "
                    + MODEL_TYPES.stream().sorted().toList() + ") but missing");
        }
        return switch (modelType.toLowerCase(Locale.ROOT)) {
            case "llama", "mistral", "qwen2" -> LlamaArchitecture.fromJson(root);
            case "gpt2" -> Gpt2Architecture.fromJson(root);
            case "bloom" -> BloomArchitecture.fromJson(root);
            case "bert" -> BertArchitecture.fromJson(root);
            default -> throw new ModelFormatException("model_type '" + modelType + "' is not supported; ptune reads "
                    + MODEL_TYPES.stream().sorted().toList());
        };
    }

    /**
     * Reads {@code eos_token_id} in either form config files use: one int or a list of ints.
     * Also used for {@code generation_config.json}.
     */
    static List<Long> tokenIdList(JsonNode root, String field) {
        return ConfigFields.tokenIdList(root, field);
    }
}
