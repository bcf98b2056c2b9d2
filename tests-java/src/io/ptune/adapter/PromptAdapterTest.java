package io.ptune.adapter;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.ptune.Tolerances;
import io.ptune.AdapterException;
import io.ptune.TestMethods;
import io.ptune.Stories260kTest;
import io.ptune.adapter.Safetensors.FloatTensor;
import io.ptune.prompt.PTuningConfig;
import io.ptune.prompt.PrefixTuningConfig;
import io.ptune.prompt.PromptEncoderType;
import io.ptune.prompt.PromptInit;
import io.ptune.prompt.PromptInitSpec;
import io.ptune.prompt.PromptMethod;
import io.ptune.prompt.PromptModule;
import io.ptune.prompt.PromptTuningConfig;
import io.ptune.prompt.SoftPrompt;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Adapters on stories260K (grouped-query attention: 8 query heads, 4 key/value heads of 8, so
 * PEFT's prefix token_dim is 32): what a prompt-tuning save writes (exactly PEFT's keys), adapters
 * laid out as PEFT writes them (only prompt_embeddings, no ptune extra files, keys ptune does not
 * know, F32 or BF16) built by hand, atomic writes, and the mismatches ptune must refuse.
 */
class PromptAdapterTest extends Stories260kTest {
    private static final long[] IDS = {1, 403, 407, 261, 378};

    /** Every key PEFT's PromptTuningConfig had before 0.14, the only ones an adapter may carry. */
    private static final Set<String> PEFT_KEYS = Set.of("peft_type", "task_type", "num_virtual_tokens",
            "token_dim", "num_transformer_submodules", "num_attention_heads", "num_layers", "prompt_tuning_init",
            "prompt_tuning_init_text", "tokenizer_name_or_path", "base_model_name_or_path", "inference_mode");

    @TempDir
    Path dir;

    /** Adapters this test wrote by hand, to name each one's directory. */
    private int handWritten;



    private static SoftPrompt softPrompt(int n, int dim) {
        float[] values = new float[n * dim];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) Math.sin(i * 0.37) * (i % 7 - 3);
        }
        return new SoftPrompt(n, dim, values);
    }

    private static JsonNode configJson(Path adapter) throws IOException {
        return new ObjectMapper().readTree(adapter.resolve("adapter_config.json").toFile());
    }

    private static float[] values(int n, float scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = scale * ((i * 37 % 11) - 5) * 0.25f; // quarters: exact in BF16
        }
        return v;
    }

    /** An adapter_config.json like PEFT 0.17 writes it (with keys ptune ignores). */
    private Path peftAdapter(String name, String fields, long[] shape, float[] data, boolean bf16) throws IOException {
        Path adapter = dir.resolve(name);
        Files.createDirectories(adapter);
        Files.writeString(adapter.resolve("adapter_config.json"), """
                {
                  "auto_mapping": null,
                  "base_model_name_or_path": "karpathy/stories260K",
                  "inference_mode": true,
                  "modules_to_save": null,
                  "num_transformer_submodules": 1,
                  "peft_version": "0.17.1",
                  "revision": null,
                  "task_type": "CAUSAL_LM",
                  %s
                }""".formatted(fields));
        if (bf16) {
            ByteBuffer bytes = ByteBuffer.allocate(data.length * 2).order(ByteOrder.LITTLE_ENDIAN);
            for (float v : data) {
                bytes.putShort((short) (Float.floatToIntBits(v) >>> 16));
            }
            String header = "{\"__metadata__\":{\"format\":\"pt\"},\"prompt_embeddings\":{\"dtype\":\"BF16\",\"shape\":["
                    + shape[0] + "," + shape[1] + "],\"data_offsets\":[0," + bytes.capacity() + "]}}";
            Files.write(adapter.resolve("adapter_model.safetensors"), SafetensorsTest.file(header, bytes.array()));
        } else {
            Safetensors.write(adapter.resolve("adapter_model.safetensors"),
                    Map.of("prompt_embeddings", new FloatTensor(shape, data)), Map.of("format", "pt"));
        }
        return adapter;
    }

    /**
     * A prompt-tuning adapter as a recent PEFT's save_pretrained writes it, with a key that no PEFT
     * version knows; prompt_embeddings {@code [rows, tokenDim]} holds {@code (i % 5) - 2 + 0.5}.
     */
    private Path peftPromptTuning(String peftType, int tokenDim, int rows, boolean bf16) throws IOException {
        float[] data = new float[rows * tokenDim];
        for (int i = 0; i < data.length; i++) {
            data[i] = (i % 5) - 2 + 0.5f; // exactly representable in BF16 and F16
        }
        return peftAdapter("peft-" + peftType + "-" + (++handWritten), """
                "num_attention_heads": 8,
                "num_layers": 5,
                "num_virtual_tokens": 3,
                "peft_type": "%s",
                "prompt_tuning_init": "TEXT",
                "prompt_tuning_init_text": "Write a story",
                "token_dim": %d,
                "tokenizer_kwargs": null,
                "tokenizer_name_or_path": "karpathy/stories260K",
                "some_future_field": 1""".formatted(peftType, tokenDim), new long[] {rows, tokenDim}, data, bf16);
    }

    private Path peftPTuning(int tokenDim, float[] data) throws IOException {
        return peftAdapter("p-tuning-" + tokenDim, """
                "encoder_dropout": 0.0,
                "encoder_hidden_size": 64,
                "encoder_num_layers": 2,
                "encoder_reparameterization_type": "MLP",
                "num_attention_heads": 8,
                "num_layers": 5,
                "num_virtual_tokens": 3,
                "peft_type": "P_TUNING",
                "token_dim": %d""".formatted(tokenDim), new long[] {3, tokenDim}, data, true);
    }

    private Path peftPrefix(String name, int tokenDim, int heads, int layers, long cols, boolean projection)
            throws IOException {
        return peftAdapter(name, """
                "encoder_hidden_size": %d,
                "init_weights": null,
                "num_attention_heads": %d,
                "num_layers": %d,
                "num_virtual_tokens": 3,
                "peft_type": "PREFIX_TUNING",
                "prefix_projection": %b,
                "token_dim": %d""".formatted(tokenDim, heads, layers, projection, tokenDim),
                new long[] {3, cols}, values((int) (3 * cols), 0.5f), false);
    }

    @Test
    void promptTuningSavesExactlyPeftsKeysAndLoadsBack() throws IOException {
        SoftPrompt values = softPrompt(5, 64);
        Path out = dir.resolve("adapter");
        try (PromptModule prompt = PromptModule.fixed(model, values)) {
            PromptAdapter.save(prompt, out);
        }

        JsonNode config = configJson(out);
        Set<String> keys = new TreeSet<>();
        config.fieldNames().forEachRemaining(keys::add);
        assertEquals(new TreeSet<>(PEFT_KEYS), keys);
        assertEquals("PROMPT_TUNING", config.get("peft_type").asText());
        assertEquals("CAUSAL_LM", config.get("task_type").asText());
        assertEquals(5, config.get("num_virtual_tokens").asInt());
        assertEquals(64, config.get("token_dim").asInt());
        assertEquals(1, config.get("num_transformer_submodules").asInt());
        assertEquals(8, config.get("num_attention_heads").asInt());
        assertEquals(5, config.get("num_layers").asInt());
        assertEquals("RANDOM", config.get("prompt_tuning_init").asText());
        assertTrue(config.get("prompt_tuning_init_text").isNull());
        assertTrue(config.get("tokenizer_name_or_path").isNull());
        assertTrue(config.get("inference_mode").asBoolean());
        assertTrue(config.get("base_model_name_or_path").asText().endsWith("stories260k"));

        Safetensors.SafetensorsFile weights = Safetensors.open(out.resolve("adapter_model.safetensors"));
        assertEquals(Set.of("prompt_embeddings"), weights.tensors().keySet());
        assertEquals("pt", weights.metadata().get("format"));
        assertEquals(Safetensors.DType.F32, weights.tensors().get("prompt_embeddings").dtype());
        assertArrayEquals(new long[] {5, 64}, weights.tensors().get("prompt_embeddings").shape());

        try (PromptModule loaded = PromptAdapter.load(out, model)) {
            assertEquals(values, loaded.inputPrompt());
            assertEquals(PromptInit.RANDOM, ((PromptTuningConfig) loaded.config()).init());
        }
        try (Stream<Path> siblings = Files.list(dir)) {
            assertEquals(List.of(out), siblings.toList(), "no temporary directory is left behind");
        }
    }

    @Test
    void textInitRecordsTextAndTokenizer() throws IOException {
        PromptTuningConfig config = PromptTuningConfig.builder().numVirtualTokens(3).initText("Tell a story").build();
        Path out = dir.resolve("text");
        try (PromptModule prompt = PromptModule.create(model, config)) {
            PromptAdapter.save(prompt, out);
        }
        JsonNode json = configJson(out);
        assertEquals("TEXT", json.get("prompt_tuning_init").asText());
        assertEquals("Tell a story", json.get("prompt_tuning_init_text").asText());
        assertTrue(json.get("tokenizer_name_or_path").asText().endsWith("stories260k"));
    }

    @Test
    void labelsInitIsWrittenAsRandomForPeft() throws IOException {
        PromptTuningConfig config = PromptTuningConfig.builder().numVirtualTokens(2)
                .labelWords(List.of("good", "bad")).build();
        assertEquals(PromptInit.LABELS, config.init());
        Path out = dir.resolve("labels");
        try (PromptModule prompt = PromptModule.create(model, config)) {
            PromptAdapter.save(prompt, out, null);
        }
        JsonNode json = configJson(out);
        assertEquals("RANDOM", json.get("prompt_tuning_init").asText());
        assertTrue(json.get("base_model_name_or_path").isNull());
    }

    @Test
    void overwritesOnlyTheAdapterFilesInAnExistingDirectory() throws IOException {
        Path out = dir.resolve("existing");
        Files.createDirectories(out);
        Files.writeString(out.resolve("README.md"), "keep me");
        SoftPrompt second = softPrompt(4, 64);
        try (PromptModule first = PromptModule.fixed(model, softPrompt(2, 64));
                PromptModule next = PromptModule.fixed(model, second)) {
            PromptAdapter.save(first, out);
            PromptAdapter.save(next, out);
        }
        assertEquals("keep me", Files.readString(out.resolve("README.md")));
        try (PromptModule loaded = PromptAdapter.load(out, model)) {
            assertEquals(second, loaded.inputPrompt());
        }
        try (Stream<Path> siblings = Files.list(dir)) {
            assertEquals(1, siblings.count(), "no temporary directory is left behind");
        }
    }

    @Test
    void refusesAPromptOfTheWrongWidthOrAnOutputThatIsAFileAndWritesNothing() throws IOException {
        // A prompt module always has its model's width: a 32-wide prompt never gets to a save.
        IllegalArgumentException width = assertThrows(IllegalArgumentException.class,
                () -> PromptModule.fixed(model, softPrompt(2, 32)));
        assertTrue(width.getMessage().contains("dim 32") && width.getMessage().contains("hidden_size is 64"),
                width.getMessage());
        Path file = Files.writeString(dir.resolve("not-a-directory"), "keep me");
        try (PromptModule prompt = PromptModule.fixed(model, softPrompt(2, 64))) {
            AdapterException e = assertThrows(AdapterException.class, () -> PromptAdapter.save(prompt, file));
            assertTrue(e.getMessage().contains("not a directory"), e.getMessage());
        }
        assertEquals("keep me", Files.readString(file));
        try (Stream<Path> siblings = Files.list(dir)) {
            assertEquals(List.of(file), siblings.toList(), "no temporary directory is left behind");
        }
    }

    @Test
    void loadsAPromptTuningAdapterWrittenByPeft() throws IOException {
        for (boolean bf16 : new boolean[] {false, true}) {
            Path adapter = peftPromptTuning("PROMPT_TUNING", 64, 3, bf16);
            try (PromptModule loaded = PromptAdapter.load(adapter, model)) {
                SoftPrompt prompt = loaded.inputPrompt();
                assertEquals(3, prompt.numVirtualTokens());
                assertEquals(64, prompt.dim());
                float[] values = prompt.values();
                for (int i = 0; i < values.length; i++) {
                    assertEquals((i % 5) - 2 + 0.5f, values[i], (bf16 ? "BF16" : "F32") + " value " + i);
                }
                assertEquals(PromptInitSpec.text("Write a story"), ((PromptTuningConfig) loaded.config()).initialization());
            }
            assertEquals("karpathy/stories260K", PromptAdapter.baseModelNameOrPath(adapter));
        }
    }

    @Test
    void rejectsAPromptTuningAdapterForAnotherModelWidth() throws IOException {
        Path adapter = peftPromptTuning("PROMPT_TUNING", 768, 3, false);
        AdapterException e = assertThrows(AdapterException.class, () -> PromptAdapter.load(adapter, model));
        String message = e.getMessage();
        assertTrue(message.contains("adapter_config.json"), message);
        assertTrue(message.contains("token_dim"), message);
        assertTrue(message.contains("768") && message.contains("64"), message);
        assertTrue(message.contains("another model"), message);
    }

    @Test
    void otherPeftTypesAreRefusedByName() throws IOException {
        Path lora = peftPromptTuning("LORA", 64, 3, false);
        assertTrue(assertThrows(AdapterException.class, () -> PromptAdapter.load(lora, model))
                .getMessage().contains("LORA"));
        Path adaption = peftPromptTuning("ADAPTION_PROMPT", 64, 3, false);
        AdapterException unsupported = assertThrows(AdapterException.class, () -> PromptAdapter.load(adaption, model));
        assertTrue(unsupported.getMessage().contains("ADAPTION_PROMPT is not supported"), unsupported.getMessage());
    }

    @Test
    void rejectsTensorShapeThatDisagreesWithTheConfig() throws IOException {
        Path adapter = peftPromptTuning("PROMPT_TUNING", 64, 4, false);
        AdapterException e = assertThrows(AdapterException.class, () -> PromptAdapter.load(adapter, model));
        assertTrue(e.getMessage().contains("[4, 64]") && e.getMessage().contains("num_virtual_tokens 3"),
                e.getMessage());
    }

    @Test
    void reportsMissingPieces() throws IOException {
        AdapterException noDir = assertThrows(AdapterException.class,
                () -> PromptAdapter.load(dir.resolve("absent"), model));
        assertTrue(noDir.getMessage().contains("does not exist"), noDir.getMessage());

        Path empty = Files.createDirectories(dir.resolve("empty"));
        assertTrue(assertThrows(AdapterException.class, () -> PromptAdapter.load(empty, model))
                .getMessage().contains("adapter_config.json"));

        Path noWeights = peftPromptTuning("PROMPT_TUNING", 64, 3, false);
        Files.delete(noWeights.resolve("adapter_model.safetensors"));
        Files.writeString(noWeights.resolve("adapter_model.bin"), "pickle");
        AdapterException e = assertThrows(AdapterException.class, () -> PromptAdapter.load(noWeights, model));
        assertTrue(e.getMessage().contains("adapter_model.safetensors") && e.getMessage().contains("safe_serialization"),
                e.getMessage());

        Path corrupt = peftPromptTuning("PROMPT_TUNING", 64, 3, true);
        Files.write(corrupt.resolve("adapter_model.safetensors"), new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9});
        assertThrows(AdapterException.class, () -> PromptAdapter.load(corrupt, model));

        Path noTokenDim = peftPromptTuning("PROMPT_TUNING", 64, 3, false);
        Path config = noTokenDim.resolve("adapter_config.json");
        Files.writeString(config, Files.readString(config).replace("\"token_dim\": 64,", ""));
        AdapterException missingField = assertThrows(AdapterException.class, () -> PromptAdapter.load(noTokenDim, model));
        assertTrue(missingField.getMessage().contains("'token_dim'"), missingField.getMessage());
    }

    @Test
    void peftsPTuningAdapterLoadsAsAFixedPromptOfItsEncoderOutput() throws IOException {
        float[] output = values(3 * 64, 1f);
        Path adapter = peftPTuning(64, output);
        try (PromptModule loaded = PromptAdapter.load(adapter, model)) {
            assertEquals(PromptMethod.PROMPT_TUNING, loaded.method(), "PEFT saved only the encoder output");
            assertEquals(3, loaded.inputVirtualTokens());
            assertArrayEquals(output, loaded.read("embedding"));
            try (PromptModule fixed = PromptModule.fixed(model, new SoftPrompt(3, 64, output))) {
                // The same values, shapes and machine: bit-identical.
                assertTrue(Arrays.deepEquals(model.logits(fixed, IDS), model.logits(loaded, IDS)));
            }
        }
        AdapterException resume = assertThrows(AdapterException.class, () -> PromptAdapter.loadForTraining(adapter, model));
        assertTrue(resume.getMessage().contains("ptune_prompt_encoder.safetensors")
                && resume.getMessage().contains("from-adapter"), resume.getMessage());
        // ...and it warm-starts a new P-tuning prompt.
        try (PromptModule warm = PromptModule.create(model, PTuningConfig.builder().numVirtualTokens(3)
                .initFromAdapter(adapter).build())) {
            assertArrayEquals(output, warm.read("embedding"));
        }
    }

    @Test
    void peftsPrefixAdapterForAGroupedQueryModelLoads() throws IOException {
        // token_dim = head_dim 8 * 4 kv heads; prompt_embeddings [3, 2 * 5 layers * 32].
        for (boolean projection : new boolean[] {false, true}) {
            Path adapter = peftPrefix("prefix-" + projection, 32, 4, 5, 320, projection);
            float[] data = values(3 * 320, 0.5f);
            try (PromptModule loaded = PromptAdapter.load(adapter, model);
                    PromptModule same = PromptModule.create(model, PrefixTuningConfig.builder().numVirtualTokens(3).build())) {
                assertEquals(PromptMethod.PREFIX_TUNING, loaded.method());
                assertFalse(((PrefixTuningConfig) loaded.config()).prefixProjection(),
                        "the projected prefix is used as it is");
                assertEquals(0, loaded.inputVirtualTokens());
                assertArrayEquals(data, loaded.peftEmbeddings());
                same.write("embedding", data);
                float[][] logits = model.logits(loaded, IDS);
                assertEquals(IDS.length, logits.length, "no virtual rows for a prefix");
                assertTrue(Arrays.deepEquals(model.logits(same, IDS), logits));  // same values: bit-identical
                assertTrue(Tolerances.maxDiff(model.logits(null, IDS), logits) > 100 * Tolerances.fp32(Tolerances.maxAbs(logits)),
                        "the prefix matters, by far more than rounding");
            }
        }
    }

    @Test
    void prefixAdaptersForAnotherShapeAreRejected() throws IOException {
        AdapterException hidden = assertThrows(AdapterException.class,
                () -> PromptAdapter.load(peftPrefix("hidden", 64, 8, 5, 640, false), model));
        assertTrue(hidden.getMessage().contains("token_dim is 64") && hidden.getMessage().contains("grouped-query")
                && hidden.getMessage().contains("32"), hidden.getMessage());
        AdapterException layers = assertThrows(AdapterException.class,
                () -> PromptAdapter.load(peftPrefix("layers", 32, 4, 4, 256, false), model));
        assertTrue(layers.getMessage().contains("num_layers is 4") && layers.getMessage().contains("5 layers")
                && layers.getMessage().contains("another model"), layers.getMessage());
        AdapterException heads = assertThrows(AdapterException.class,
                () -> PromptAdapter.load(peftPrefix("heads", 32, 8, 5, 320, false), model));
        assertTrue(heads.getMessage().contains("num_attention_heads is 8"), heads.getMessage());
        AdapterException shape = assertThrows(AdapterException.class,
                () -> PromptAdapter.load(peftPrefix("shape", 32, 4, 5, 300, false), model));
        assertTrue(shape.getMessage().contains("[3, 300]") && shape.getMessage().contains("[3, 320]"),
                shape.getMessage());
    }

    @Test
    void mismatchesAreRejectedWithTheFileAndField() throws IOException {
        AdapterException width = assertThrows(AdapterException.class,
                () -> PromptAdapter.load(peftPTuning(128, values(3 * 128, 1f)), model));
        assertTrue(width.getMessage().contains("adapter_config.json") && width.getMessage().contains("token_dim is 128")
                && width.getMessage().contains("another model"), width.getMessage());

        Path zero = peftPTuning(64, values(3 * 64, 1f));
        Path config = zero.resolve("adapter_config.json");
        Files.writeString(config, Files.readString(config).replace("\"num_virtual_tokens\": 3", "\"num_virtual_tokens\": 0"));
        AdapterException empty = assertThrows(AdapterException.class, () -> PromptAdapter.load(zero, model));
        assertTrue(empty.getMessage().contains("num_virtual_tokens") && empty.getMessage().contains("length 0"),
                empty.getMessage());

        Files.writeString(config, Files.readString(config).replace("\"P_TUNING\"", "\"LORA\""));
        assertTrue(assertThrows(AdapterException.class, () -> PromptAdapter.load(zero, model)).getMessage()
                .contains("LORA"));
        Files.writeString(config, Files.readString(config).replace("\"LORA\"", "\"PTUNE_DYNAMIC_PROMPT\"")
                .replace("\"num_virtual_tokens\": 0", "\"num_virtual_tokens\": 3")
                .replace("\"encoder_hidden_size\"", "\"generator_hidden_size\""));
        AdapterException dynamic = assertThrows(AdapterException.class, () -> PromptAdapter.load(zero, model));
        assertTrue(dynamic.getMessage().contains("ptune_dynamic_prompt.safetensors"), dynamic.getMessage());
    }

    @Test
    void encoderFilesMustBelongToTheirAdapter() throws IOException {
        Path a = dir.resolve("a");
        Path b = dir.resolve("b");
        PTuningConfig config = PTuningConfig.builder().numVirtualTokens(3).encoderHiddenSize(16).seed(1).build();
        try (PromptModule first = PromptModule.create(model, config);
                PromptModule second = PromptModule.create(model, PTuningConfig.builder().numVirtualTokens(3)
                        .encoderHiddenSize(16).seed(2).build())) {
            PromptAdapter.save(first, a);
            PromptAdapter.save(second, b);
        }
        Files.copy(b.resolve(PromptAdapter.P_TUNING_ENCODER_FILE), a.resolve(PromptAdapter.P_TUNING_ENCODER_FILE),
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        AdapterException mixed = assertThrows(AdapterException.class, () -> PromptAdapter.load(a, model));
        assertTrue(mixed.getMessage().contains("does not reproduce"), mixed.getMessage());

        Safetensors.SafetensorsFile encoder = Safetensors.open(b.resolve(PromptAdapter.P_TUNING_ENCODER_FILE));
        Map<String, FloatTensor> partial = new LinkedHashMap<>();
        for (String name : encoder.tensors().keySet()) {
            if (!name.equals("mlp_head.4.bias")) {
                partial.put(name, encoder.readFloat(name));
            }
        }
        Safetensors.write(b.resolve(PromptAdapter.P_TUNING_ENCODER_FILE), partial, Map.of());
        AdapterException missing = assertThrows(AdapterException.class, () -> PromptAdapter.load(b, model));
        assertTrue(missing.getMessage().contains("missing [mlp_head.4.bias]"), missing.getMessage());

        Path c = dir.resolve("c");
        try (PromptModule lstm = PromptModule.create(model, PTuningConfig.builder().numVirtualTokens(3)
                .encoderType(PromptEncoderType.LSTM).encoderHiddenSize(16).build())) {
            PromptAdapter.save(lstm, c);
        }
        Path configFile = c.resolve("adapter_config.json");
        Files.writeString(configFile, Files.readString(configFile).replace("\"LSTM\"", "\"MLP\""));
        AdapterException type = assertThrows(AdapterException.class, () -> PromptAdapter.load(c, model));
        assertTrue(type.getMessage().contains("another encoder type"), type.getMessage());
    }

    @Test
    void savingIntoAnOldAdapterDirectoryRemovesItsStaleExtraFiles() throws IOException {
        Path out = dir.resolve("reused");
        try (PromptModule stage2 = PromptModule.create(model, TestMethods.get("p-tuning-mlp"))) {
            stage2.unfreezeTopLayers(1, 1e-5);
            PromptAdapter.save(stage2, out);
        }
        assertTrue(Files.exists(out.resolve(PromptAdapter.LAYERS_FILE)));
        assertTrue(Files.exists(out.resolve(PromptAdapter.P_TUNING_ENCODER_FILE)));
        Files.writeString(out.resolve("README.md"), "notes kept across saves");
        try (PromptModule plain = PromptModule.create(model, PromptTuningConfig.builder().numVirtualTokens(2).build())) {
            PromptAdapter.save(plain, out);
            float[][] expected = model.logits(plain, IDS);
            try (PromptModule loaded = PromptAdapter.load(out, model)) {
                assertEquals(0, loaded.unfrozenLayers(), "the old layer file must not be applied");
                assertTrue(Arrays.deepEquals(expected, model.logits(loaded, IDS)));  // same values: bit-identical
            }
        }
        assertFalse(Files.exists(out.resolve(PromptAdapter.LAYERS_FILE)));
        assertFalse(Files.exists(out.resolve(PromptAdapter.P_TUNING_ENCODER_FILE)));
        assertTrue(Files.exists(out.resolve("README.md")), "files that are not the adapter's stay");
        try (var entries = Files.list(dir)) {
            assertTrue(entries.noneMatch(p -> p.getFileName().toString().contains(".tmp-")), "no temporary directory left");
        }
    }
}
