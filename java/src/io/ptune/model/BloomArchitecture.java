package io.ptune.model;

import static io.ptune.model.ConfigFields.checkSpecialIds;
import static io.ptune.model.ConfigFields.optionalBoolean;
import static io.ptune.model.ConfigFields.optionalDouble;
import static io.ptune.model.ConfigFields.optionalTokenId;
import static io.ptune.model.ConfigFields.requireHeadsDivide;
import static io.ptune.model.ConfigFields.requirePositive;
import static io.ptune.model.ConfigFields.requiredInt;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.ModelFormatException;
import io.ptune.nativebridge.ModelSpecOptions;
import java.util.List;

/**
 * BLOOM ({@code BloomForCausalLM}), as read from config.json with transformers' {@code BloomConfig}
 * defaults: no position embeddings (ALiBi, so no length limit), an embedding LayerNorm, fused
 * interleaved query/key/value, BLOOM's GELU, an MLP of 4 C, the LM head tied to the embeddings.
 *
 * @param vocabSize V
 * @param hiddenSize C ({@code hidden_size}, older configs {@code n_embed})
 * @param numLayers {@code n_layer}
 * @param numHeads {@code n_head} (any count: ALiBi slopes follow BLOOM's rule for non-powers of two)
 * @param layerNormEps {@code layer_norm_epsilon}
 * @param tieWordEmbeddings whether the LM head is the embedding table (true unless config.json says false)
 * @param bosTokenId beginning-of-sequence id, or null
 * @param eosTokenIds ids that end generation
 * @param padTokenId padding id, or null
 */
public record BloomArchitecture(
        int vocabSize,
        int hiddenSize,
        int numLayers,
        int numHeads,
        double layerNormEps,
        boolean tieWordEmbeddings,
        Integer bosTokenId,
        List<Long> eosTokenIds,
        Long padTokenId) implements Architecture {

    public BloomArchitecture {
        requirePositive("vocab_size", vocabSize);
        requirePositive("hidden_size", hiddenSize);
        requirePositive("n_layer", numLayers);
        requirePositive("n_head", numHeads);
        requirePositive("layer_norm_epsilon", layerNormEps);
        requireHeadsDivide("hidden_size", hiddenSize, "n_head", numHeads);
        eosTokenIds = checkSpecialIds(bosTokenId, eosTokenIds, padTokenId, vocabSize);
    }

    /** Reads an already parsed BLOOM {@code config.json}; errors do not name a file. */
    static BloomArchitecture fromJson(JsonNode root) {
        if (optionalBoolean(root, "apply_residual_connection_post_layernorm", false)) {
            throw new ModelFormatException("apply_residual_connection_post_layernorm true is not supported yet");
        }
        Long bos = optionalTokenId(root, "bos_token_id");
        return new BloomArchitecture(
                requiredInt(root, "vocab_size"),
                requiredInt(root, "hidden_size", "n_embed"),
                requiredInt(root, "n_layer", "num_hidden_layers"),
                requiredInt(root, "n_head", "num_attention_heads"),
                optionalDouble(root, "layer_norm_epsilon", 1e-5),
                optionalBoolean(root, "tie_word_embeddings", true),
                ConfigFields.intTokenId("bos_token_id", bos),
                ConfigFields.tokenIdList(root, "eos_token_id"),
                optionalTokenId(root, "pad_token_id"));
    }

    @Override
    public String modelType() {
        return "bloom";
    }

    /** ALiBi has no position table: no length limit. */
    @Override
    public int maxPositionEmbeddings() {
        return 0;
    }

    @Override
    public boolean causal() {
        return true;
    }

    @Override
    public ModelSpecOptions nativeSpec() {
        return new ModelSpecOptions(ModelSpecOptions.Family.BLOOM, vocabSize, hiddenSize, 4 * hiddenSize, numLayers,
                numHeads, numHeads, headDim(), 0, layerNormEps, ModelSpecOptions.Activation.GELU_BLOOM,
                tieWordEmbeddings, ModelSpecOptions.Rope.NONE, false, false, 0, numLayers, 0);
    }
}
