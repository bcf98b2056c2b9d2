package io.ptune.model;

import static io.ptune.model.ConfigFields.checkSpecialIds;
import static io.ptune.model.ConfigFields.optionalBoolean;
import static io.ptune.model.ConfigFields.optionalDouble;
import static io.ptune.model.ConfigFields.optionalInt;
import static io.ptune.model.ConfigFields.optionalString;
import static io.ptune.model.ConfigFields.optionalTokenId;
import static io.ptune.model.ConfigFields.requireHeadsDivide;
import static io.ptune.model.ConfigFields.requirePositive;
import static io.ptune.model.ConfigFields.requiredInt;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.ModelFormatException;
import io.ptune.nativebridge.ModelSpecOptions;
import java.util.List;

/**
 * GPT-2 ({@code GPT2LMHeadModel}), as read from config.json with transformers' {@code GPT2Config}
 * defaults: learned absolute positions ({@code n_positions} of them), pre-LN blocks, Conv1D
 * weights, the LM head tied to {@code wte}.
 *
 * @param vocabSize V ({@code vocab_size}; 50257 for the released models, not a multiple of 8)
 * @param hiddenSize C ({@code n_embd})
 * @param intermediateSize MLP width ({@code n_inner}, or 4 C when null)
 * @param numLayers {@code n_layer}
 * @param numHeads {@code n_head}
 * @param maxPositionEmbeddings {@code n_positions}: virtual tokens + text + new tokens must fit
 * @param layerNormEps {@code layer_norm_epsilon}
 * @param activation {@code activation_function} (gelu_new for the released models)
 * @param tieWordEmbeddings whether the LM head is {@code wte} (true unless config.json says false)
 * @param bosTokenId beginning-of-sequence id, or null
 * @param eosTokenIds ids that end generation
 * @param padTokenId padding id, or null (GPT-2 has none; batches pad with EOS, masked)
 */
public record Gpt2Architecture(
        int vocabSize,
        int hiddenSize,
        int intermediateSize,
        int numLayers,
        int numHeads,
        int maxPositionEmbeddings,
        double layerNormEps,
        ModelSpecOptions.Activation activation,
        boolean tieWordEmbeddings,
        Integer bosTokenId,
        List<Long> eosTokenIds,
        Long padTokenId) implements Architecture {

    public Gpt2Architecture {
        requirePositive("vocab_size", vocabSize);
        requirePositive("n_embd", hiddenSize);
        requirePositive("n_inner", intermediateSize);
        requirePositive("n_layer", numLayers);
        requirePositive("n_head", numHeads);
        requirePositive("n_positions", maxPositionEmbeddings);
        requirePositive("layer_norm_epsilon", layerNormEps);
        requireHeadsDivide("n_embd", hiddenSize, "n_head", numHeads);
        eosTokenIds = checkSpecialIds(bosTokenId, eosTokenIds, padTokenId, vocabSize);
    }

    /** Reads an already parsed GPT-2 {@code config.json}; errors do not name a file. */
    static Gpt2Architecture fromJson(JsonNode root) {
        // Features of GPT2Config that change the computation and that ptune does not implement.
        if (optionalBoolean(root, "scale_attn_by_inverse_layer_idx", false)) {
            throw new ModelFormatException("scale_attn_by_inverse_layer_idx true is not supported yet");
        }
        if (optionalBoolean(root, "add_cross_attention", false)) {
            throw new ModelFormatException("add_cross_attention true (an encoder-decoder GPT-2) is not supported");
        }
        if (!optionalBoolean(root, "scale_attn_weights", true)) {
            throw new ModelFormatException("scale_attn_weights false is not supported yet");
        }
        int hidden = requiredInt(root, "n_embd", "hidden_size");
        Integer inner = optionalInt(root, "n_inner", null);
        Long bos = optionalTokenId(root, "bos_token_id");
        return new Gpt2Architecture(
                requiredInt(root, "vocab_size"),
                hidden,
                inner != null ? inner : 4 * hidden,
                requiredInt(root, "n_layer", "num_hidden_layers"),
                requiredInt(root, "n_head", "num_attention_heads"),
                optionalInt(root, "n_positions", optionalInt(root, "max_position_embeddings", 1024)),
                optionalDouble(root, "layer_norm_epsilon", 1e-5),
                ConfigFields.activation("activation_function", optionalString(root, "activation_function", "gelu_new")),
                optionalBoolean(root, "tie_word_embeddings", true),
                ConfigFields.intTokenId("bos_token_id", bos),
                ConfigFields.tokenIdList(root, "eos_token_id"),
                optionalTokenId(root, "pad_token_id"));
    }

    @Override
    public String modelType() {
        return "gpt2";
    }

    @Override
    public boolean causal() {
        return true;
    }

    @Override
    public ModelSpecOptions nativeSpec() {
        return new ModelSpecOptions(ModelSpecOptions.Family.GPT2, vocabSize, hiddenSize, intermediateSize, numLayers,
                numHeads, numHeads, headDim(), maxPositionEmbeddings, layerNormEps, activation, tieWordEmbeddings,
                ModelSpecOptions.Rope.NONE, false, false, 0, numLayers, 0);
    }
}
