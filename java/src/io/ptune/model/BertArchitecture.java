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
 * A BERT-family encoder ({@code BertModel}, {@code BertForMaskedLM}; MiniLM and BGE are BERTs), as
 * read from config.json with transformers' {@code BertConfig} defaults: word + absolute position +
 * token-type embeddings, post-LN blocks, bidirectional attention, the MLM head where the
 * checkpoint has one.
 *
 * @param vocabSize V
 * @param hiddenSize C
 * @param intermediateSize MLP width
 * @param numLayers {@code num_hidden_layers}
 * @param numHeads {@code num_attention_heads}
 * @param maxPositionEmbeddings positions the model has (virtual tokens + text must fit)
 * @param typeVocabSize rows of the token-type table
 * @param layerNormEps {@code layer_norm_eps}
 * @param activation {@code hidden_act} (exact GELU for BERT)
 * @param tieWordEmbeddings whether the MLM decoder is the embedding table
 * @param padTokenId padding id (BERT's default 0)
 */
public record BertArchitecture(
        int vocabSize,
        int hiddenSize,
        int intermediateSize,
        int numLayers,
        int numHeads,
        int maxPositionEmbeddings,
        int typeVocabSize,
        double layerNormEps,
        ModelSpecOptions.Activation activation,
        boolean tieWordEmbeddings,
        Long padTokenId) implements Architecture {

    public BertArchitecture {
        requirePositive("vocab_size", vocabSize);
        requirePositive("hidden_size", hiddenSize);
        requirePositive("intermediate_size", intermediateSize);
        requirePositive("num_hidden_layers", numLayers);
        requirePositive("num_attention_heads", numHeads);
        requirePositive("max_position_embeddings", maxPositionEmbeddings);
        requirePositive("type_vocab_size", typeVocabSize);
        requirePositive("layer_norm_eps", layerNormEps);
        requireHeadsDivide("hidden_size", hiddenSize, "num_attention_heads", numHeads);
        checkSpecialIds(null, List.of(), padTokenId, vocabSize);
    }

    /** Reads an already parsed BERT {@code config.json}; errors do not name a file. */
    static BertArchitecture fromJson(JsonNode root) {
        String positions = optionalString(root, "position_embedding_type", "absolute");
        if (!positions.equals("absolute")) {
            throw new ModelFormatException("position_embedding_type '" + positions + "' is not supported; ptune"
                    + " implements BERT's absolute position embeddings");
        }
        if (optionalBoolean(root, "is_decoder", false)) {
            throw new ModelFormatException("is_decoder true (BERT as a decoder) is not supported");
        }
        return new BertArchitecture(
                requiredInt(root, "vocab_size"),
                requiredInt(root, "hidden_size"),
                requiredInt(root, "intermediate_size"),
                requiredInt(root, "num_hidden_layers"),
                requiredInt(root, "num_attention_heads"),
                optionalInt(root, "max_position_embeddings", 512),
                optionalInt(root, "type_vocab_size", 2),
                optionalDouble(root, "layer_norm_eps", 1e-12),
                ConfigFields.activation("hidden_act", optionalString(root, "hidden_act", "gelu")),
                optionalBoolean(root, "tie_word_embeddings", true),
                optionalTokenId(root, "pad_token_id"));
    }

    /** The architecture the native core read from an ONNX export's graph. */
    static BertArchitecture fromSpec(ModelSpecOptions spec) {
        return new BertArchitecture(spec.vocabSize(), spec.hiddenSize(), spec.intermediateSize(), spec.numLayers(),
                spec.numHeads(), spec.maxPositions(), spec.typeVocabSize(), spec.normEps(), spec.activation(), true, 0L);
    }

    @Override
    public String modelType() {
        return "bert";
    }

    @Override
    public boolean usesTokenTypes() {
        return typeVocabSize > 0;
    }

    @Override
    public boolean causal() {
        return false;
    }

    @Override
    public Integer bosTokenId() {
        return null;
    }

    @Override
    public List<Long> eosTokenIds() {
        return List.of();
    }

    @Override
    public ModelSpecOptions nativeSpec() {
        return new ModelSpecOptions(ModelSpecOptions.Family.BERT, vocabSize, hiddenSize, intermediateSize, numLayers,
                numHeads, numHeads, headDim(), maxPositionEmbeddings, layerNormEps, activation, tieWordEmbeddings,
                ModelSpecOptions.Rope.NONE, false, false, 0, numLayers, typeVocabSize);
    }
}
