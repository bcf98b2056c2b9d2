package io.ptune.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.ModelFormatException;
import io.ptune.TestPaths;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LlamaArchitectureTest {
    @TempDir
    Path dir;

    private static final String MINIMAL = """
            {"vocab_size": 100, "hidden_size": 32, "intermediate_size": 64,
             "num_hidden_layers": 2, "num_attention_heads": 4, "model_type": "llama"%s}""";

    private Path write(String json) throws IOException {
        Path file = dir.resolve("config.json");
        Files.writeString(file, json);
        return file;
    }

    @Test
    void readsStories260k() {
        LlamaArchitecture arch = LlamaArchitecture.fromConfigJson(TestPaths.stories260k().resolve("config.json"));
        assertEquals(512, arch.vocabSize());
        assertEquals(64, arch.hiddenSize());
        assertEquals(172, arch.intermediateSize());
        assertEquals(5, arch.numLayers());
        assertEquals(8, arch.numHeads());
        assertEquals(4, arch.numKvHeads());
        assertEquals(8, arch.headDim());
        assertEquals(512, arch.maxPositionEmbeddings());
        assertEquals(1e-5, arch.rmsNormEps());
        assertEquals(10000.0, arch.ropeTheta());
        assertTrue(arch.tieWordEmbeddings());
        assertFalse(arch.attentionBias());
        assertEquals(1, arch.bosTokenId());
        assertEquals(List.of(2L), arch.eosTokenIds());
        assertNull(arch.padTokenId());
        assertEquals("llama", arch.modelType());
        assertEquals(2, arch.queryGroups());
    }

    @Test
    void appliesHuggingFaceDefaults() throws IOException {
        LlamaArchitecture arch = LlamaArchitecture.fromConfigJson(write(MINIMAL.formatted("")));
        assertEquals(4, arch.numKvHeads(), "num_key_value_heads defaults to num_attention_heads");
        assertEquals(8, arch.headDim(), "head_dim defaults to hidden_size / num_attention_heads");
        assertEquals(1e-6, arch.rmsNormEps());
        assertEquals(10000.0, arch.ropeTheta());
        assertEquals(2048, arch.maxPositionEmbeddings());
        assertFalse(arch.tieWordEmbeddings());
        assertFalse(arch.attentionBias());
        assertFalse(arch.mlpBias());
        assertNull(arch.bosTokenId());
        assertEquals(List.of(), arch.eosTokenIds());
    }

    @Test
    void eosMayBeAList() throws IOException {
        LlamaArchitecture arch = LlamaArchitecture.fromConfigJson(
                write(MINIMAL.formatted(", \"eos_token_id\": [2, 7], \"pad_token_id\": -1")));
        assertEquals(List.of(2L, 7L), arch.eosTokenIds());
        assertNull(arch.padTokenId(), "a negative pad id means none");
    }

    @Test
    void missingRequiredFieldIsNamed() throws IOException {
        for (String field : List.of("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads")) {
            String json = MINIMAL.formatted("").replaceAll("\"" + field + "\": \\d+,\\s*", "");
            Path file = write(json);
            ModelFormatException e = assertThrows(ModelFormatException.class,
                    () -> LlamaArchitecture.fromConfigJson(file));
            assertTrue(e.getMessage().contains("'" + field + "'"), e.getMessage());
            assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
        }
    }

    @Test
    void rejectsUnsupportedModelType() throws IOException {
        Path file = write(MINIMAL.formatted("").replace("\"llama\"", "\"gpt2\""));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> LlamaArchitecture.fromConfigJson(file));
        assertTrue(e.getMessage().contains("model_type 'gpt2'"), e.getMessage());
    }

    @Test
    void readsRopeScalingItImplementsAndRefusesTheRest() throws IOException {
        LlamaArchitecture llama3 = LlamaArchitecture.fromConfigJson(write(MINIMAL.formatted(", \"rope_scaling\":"
                + " {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
                + " \"original_max_position_embeddings\": 8192}")));
        assertEquals(new LlamaArchitecture.RopeScaling(LlamaArchitecture.RopeScaling.Type.LLAMA3, 8, 1, 4, 8192), llama3.ropeScaling());
        assertEquals(LlamaArchitecture.RopeScaling.Type.LINEAR, LlamaArchitecture.fromConfigJson(write(MINIMAL.formatted(
                ", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}"))).ropeScaling().type());
        Path incomplete = write(MINIMAL.formatted(", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}"));
        ModelFormatException missing = assertThrows(ModelFormatException.class,
                () -> LlamaArchitecture.fromConfigJson(incomplete));
        assertTrue(missing.getMessage().contains("low_freq_factor"), missing.getMessage());
        Path dynamic = write(MINIMAL.formatted(", \"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2.0}"));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> LlamaArchitecture.fromConfigJson(dynamic));
        assertTrue(e.getMessage().contains("not supported yet"), e.getMessage());
        assertEquals(LlamaArchitecture.RopeScaling.DEFAULT, LlamaArchitecture.fromConfigJson(
                write(MINIMAL.formatted(", \"rope_scaling\": {\"type\": \"default\"}"))).ropeScaling());
        assertEquals(LlamaArchitecture.RopeScaling.DEFAULT, LlamaArchitecture.fromConfigJson(
                write(MINIMAL.formatted(", \"rope_scaling\": null"))).ropeScaling());
    }

    @Test
    void slidingWindowFollowsTransformersRules() throws IOException {
        LlamaArchitecture llama = LlamaArchitecture.fromConfigJson(write(MINIMAL.formatted("")));
        assertEquals(0, llama.slidingWindow());
        String mistral = MINIMAL.replace("\"llama\"", "\"mistral\"");
        LlamaArchitecture everyLayer = LlamaArchitecture.fromConfigJson(write(mistral.formatted(", \"sliding_window\": 16")));
        assertEquals(16, everyLayer.slidingWindow());
        assertEquals(0, everyLayer.firstSlidingLayer());
        assertEquals(0, LlamaArchitecture.fromConfigJson(write(mistral.formatted(", \"sliding_window\": null")))
                .slidingWindow());
        String qwen2 = MINIMAL.replace("\"llama\"", "\"qwen2\"");
        assertEquals(0, LlamaArchitecture.fromConfigJson(write(qwen2.formatted(", \"sliding_window\": 16")))
                .slidingWindow(), "Qwen2 uses the window only with use_sliding_window");
        LlamaArchitecture top = LlamaArchitecture.fromConfigJson(write(qwen2.formatted(
                ", \"sliding_window\": 16, \"use_sliding_window\": true, \"max_window_layers\": 1")));
        assertEquals(16, top.slidingWindow());
        assertEquals(1, top.firstSlidingLayer());
        LlamaArchitecture listed = LlamaArchitecture.fromConfigJson(write(qwen2.formatted(
                ", \"sliding_window\": 8, \"layer_types\": [\"full_attention\", \"sliding_attention\"]")));
        assertEquals(8, listed.slidingWindow());
        assertEquals(1, listed.firstSlidingLayer());
        Path alternating = write(qwen2.formatted(
                ", \"sliding_window\": 8, \"layer_types\": [\"sliding_attention\", \"full_attention\"]"));
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> LlamaArchitecture.fromConfigJson(alternating));
        assertTrue(e.getMessage().contains("alternates full and sliding"), e.getMessage());
    }

    @Test
    void readsTransformers5RopeParameters() throws IOException {
        LlamaArchitecture arch = LlamaArchitecture.fromConfigJson(write(MINIMAL.formatted(
                ", \"rope_parameters\": {\"rope_theta\": 1000000.0, \"rope_type\": \"default\"}")));
        assertEquals(1000000.0, arch.ropeTheta());
        Path yarn = write(MINIMAL.formatted(", \"rope_parameters\": {\"rope_theta\": 1e6, \"rope_type\": \"yarn\"}"));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> LlamaArchitecture.fromConfigJson(yarn));
        assertTrue(e.getMessage().contains("rope scaling") && e.getMessage().contains("not supported yet"),
                e.getMessage());
    }

    @Test
    void rejectsHeadsNotDivisibleByKvHeads() throws IOException {
        Path file = write(MINIMAL.formatted(", \"num_key_value_heads\": 3"));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> LlamaArchitecture.fromConfigJson(file));
        assertTrue(e.getMessage().contains("num_key_value_heads"), e.getMessage());
    }

    @Test
    void rejectsNonPositiveAndWronglyTypedValues() throws IOException {
        Path zero = write(MINIMAL.formatted("").replace("\"vocab_size\": 100", "\"vocab_size\": 0"));
        assertTrue(assertThrows(ModelFormatException.class, () -> LlamaArchitecture.fromConfigJson(zero))
                .getMessage().contains("vocab_size"));
        Path text = write(MINIMAL.formatted("").replace("\"hidden_size\": 32", "\"hidden_size\": \"32\""));
        assertTrue(assertThrows(ModelFormatException.class, () -> LlamaArchitecture.fromConfigJson(text))
                .getMessage().contains("hidden_size"));
        Path eosOutside = write(MINIMAL.formatted(", \"eos_token_id\": 100"));
        assertTrue(assertThrows(ModelFormatException.class, () -> LlamaArchitecture.fromConfigJson(eosOutside))
                .getMessage().contains("eos_token_id"));
    }

    @Test
    void missingOrBrokenFileNamesThePath() throws IOException {
        Path missing = dir.resolve("nope/config.json");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> LlamaArchitecture.fromConfigJson(missing));
        assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
        Path broken = write("{\"model_type\": ");
        ModelFormatException e2 = assertThrows(ModelFormatException.class, () -> LlamaArchitecture.fromConfigJson(broken));
        assertTrue(e2.getMessage().contains("not valid JSON"), e2.getMessage());
    }
}
