package io.ptune.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.ModelFormatException;
import io.ptune.internal.JsonFiles;
import io.ptune.nativebridge.ModelSpecOptions;
import org.junit.jupiter.api.Test;

/** config.json of GPT-2, BLOOM and BERT with transformers' defaults, and what ptune refuses. */
class FamilyArchitectureTest {
    private static Architecture parse(String json) throws Exception {
        JsonNode root = JsonFiles.MAPPER.readTree(json);
        return Architecture.fromJson(root);
    }

    private static String refused(String json) {
        return assertThrows(ModelFormatException.class, () -> parse(json)).getMessage();
    }

    @Test
    void gpt2DefaultsAsGpt2Config() throws Exception {
        Gpt2Architecture gpt2 = assertInstanceOf(Gpt2Architecture.class,
                parse("{\"model_type\": \"gpt2\", \"vocab_size\": 50257, \"n_embd\": 768, \"n_layer\": 12, \"n_head\": 12,"
                        + " \"bos_token_id\": 50256, \"eos_token_id\": 50256}"));
        assertEquals(3072, gpt2.intermediateSize(), "n_inner null: 4 x n_embd");
        assertEquals(1024, gpt2.maxPositionEmbeddings(), "n_positions");
        assertEquals(64, gpt2.headDim());
        assertEquals(1e-5, gpt2.layerNormEps());
        assertEquals(ModelSpecOptions.Activation.GELU_TANH, gpt2.activation(), "gelu_new");
        assertTrue(gpt2.tieWordEmbeddings() && gpt2.causal());
        assertNull(gpt2.padTokenId());
        assertEquals(ModelSpecOptions.Family.GPT2, gpt2.nativeSpec().family());
        assertTrue(refused("{\"model_type\": \"gpt2\", \"vocab_size\": 10, \"n_embd\": 8, \"n_layer\": 1, \"n_head\": 2,"
                + " \"scale_attn_by_inverse_layer_idx\": true}").contains("scale_attn_by_inverse_layer_idx"));
        assertTrue(refused("{\"model_type\": \"gpt2\", \"vocab_size\": 10, \"n_embd\": 8, \"n_layer\": 1, \"n_head\": 2,"
                + " \"activation_function\": \"swiglu\"}").contains("activation_function"));
        assertTrue(refused("{\"model_type\": \"gpt2\", \"vocab_size\": 10, \"n_embd\": 9, \"n_layer\": 1, \"n_head\": 2}")
                .contains("divisible"));
    }

    @Test
    void bloomHasNoPositionLimitAndRefusesPostLayerNormResiduals() throws Exception {
        BloomArchitecture bloom = assertInstanceOf(BloomArchitecture.class,
                parse("{\"model_type\": \"bloom\", \"vocab_size\": 250880, \"n_embed\": 1024, \"n_layer\": 24,"
                        + " \"n_head\": 16, \"pad_token_id\": 3}"));
        assertEquals(1024, bloom.hiddenSize(), "older configs spell hidden_size n_embed");
        assertEquals(0, bloom.maxPositionEmbeddings(), "ALiBi: no limit");
        assertEquals(4096, bloom.nativeSpec().intermediateSize());
        assertEquals(ModelSpecOptions.Activation.GELU_BLOOM, bloom.nativeSpec().activation());
        assertTrue(refused("{\"model_type\": \"bloom\", \"vocab_size\": 10, \"hidden_size\": 8, \"n_layer\": 1,"
                + " \"n_head\": 2, \"apply_residual_connection_post_layernorm\": true}")
                .contains("apply_residual_connection_post_layernorm"));
    }

    @Test
    void bertDefaultsAndRefusals() throws Exception {
        BertArchitecture bert = assertInstanceOf(BertArchitecture.class,
                parse("{\"model_type\": \"bert\", \"vocab_size\": 30522, \"hidden_size\": 384, \"num_hidden_layers\": 6,"
                        + " \"num_attention_heads\": 12, \"intermediate_size\": 1536}"));
        assertFalse(bert.causal());
        assertEquals(512, bert.maxPositionEmbeddings());
        assertEquals(2, bert.typeVocabSize());
        assertEquals(1e-12, bert.layerNormEps());
        assertEquals(ModelSpecOptions.Activation.GELU_EXACT, bert.activation());
        assertTrue(bert.eosTokenIds().isEmpty());
        String base = "{\"model_type\": \"bert\", \"vocab_size\": 10, \"hidden_size\": 8, \"num_hidden_layers\": 1,"
                + " \"num_attention_heads\": 2, \"intermediate_size\": 16, ";
        assertTrue(refused(base + "\"position_embedding_type\": \"relative_key\"}").contains("position_embedding_type"));
        assertTrue(refused(base + "\"is_decoder\": true}").contains("is_decoder"));
    }

    @Test
    void unknownModelTypesNameTheSupportedOnes() {
        String message = refused("{\"model_type\": \"t5\", \"vocab_size\": 10}");
        assertTrue(message.contains("'t5' is not supported") && message.contains("gpt2") && message.contains("bert"),
                message);
        assertTrue(refused("{\"vocab_size\": 10}").contains("model_type"));
    }
}
