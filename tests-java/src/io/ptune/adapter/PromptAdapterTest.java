package io.ptune.adapter;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.AdapterException;
import io.ptune.TestMethods;
import io.ptune.TestPaths;
import io.ptune.adapter.Safetensors.FloatTensor;
import io.ptune.model.CausalLm;
import io.ptune.prompt.PTuningConfig;
import io.ptune.prompt.PrefixTuningConfig;
import io.ptune.prompt.PromptEncoderType;
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
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * P-tuning and prefix adapters laid out as PEFT writes them (only prompt_embeddings, no ptune
 * extra files), built by hand for stories260K (grouped-query attention: 8 query heads, 4 key/value
 * heads of 8, so PEFT's prefix token_dim is 32), and the mismatches ptune must refuse.
 */
class PromptAdapterTest {
    private static final long[] IDS = {1, 403, 407, 261, 378};
    private static CausalLm model;

    @TempDir
    Path dir;

    @BeforeAll
    static void load() {
        model = CausalLm.load(TestPaths.stories260k());
    }

    @AfterAll
    static void close() {
        model.close();
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
    void peftsPTuningAdapterLoadsAsAFixedPromptOfItsEncoderOutput() throws IOException {
        float[] output = values(3 * 64, 1f);
        Path adapter = peftPTuning(64, output);
        try (PromptModule loaded = PromptAdapter.load(adapter, model)) {
            assertEquals(PromptMethod.PROMPT_TUNING, loaded.method(), "PEFT saved only the encoder output");
            assertEquals(3, loaded.inputVirtualTokens());
            assertArrayEquals(output, loaded.read("embedding"));
            float[][] expected = model.logits(new SoftPrompt(3, 64, output), IDS);
            assertTrue(Arrays.deepEquals(expected, model.logits(loaded, IDS)));
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
                assertTrue(Arrays.deepEquals(model.logits(same, IDS), logits));
                assertFalse(Arrays.deepEquals(model.logits((PromptModule) null, IDS), logits), "the prefix matters");
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
                assertTrue(Arrays.deepEquals(expected, model.logits(loaded, IDS)));
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
