package io.ptune.adapter;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.ptune.AdapterException;
import io.ptune.TestPaths;
import io.ptune.model.LlamaArchitecture;
import io.ptune.prompt.PromptInit;
import io.ptune.prompt.PromptTuningConfig;
import io.ptune.prompt.SoftPrompt;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PeftAdapterTest {
    private static final LlamaArchitecture STORIES =
            LlamaArchitecture.fromConfigJson(TestPaths.stories260k().resolve("config.json"));

    /** Every key PEFT's PromptTuningConfig had before 0.14, the only ones an adapter may carry. */
    private static final Set<String> PEFT_KEYS = Set.of("peft_type", "task_type", "num_virtual_tokens",
            "token_dim", "num_transformer_submodules", "num_attention_heads", "num_layers", "prompt_tuning_init",
            "prompt_tuning_init_text", "tokenizer_name_or_path", "base_model_name_or_path", "inference_mode");

    @TempDir
    Path dir;

    private static SoftPrompt prompt(int n, int dim) {
        float[] values = new float[n * dim];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) Math.sin(i * 0.37) * (i % 7 - 3);
        }
        return new SoftPrompt(n, dim, values);
    }

    @Test
    void savesExactlyPeftsKeysAndLoadsBack() throws IOException {
        SoftPrompt prompt = prompt(5, 64);
        Path out = dir.resolve("adapter");
        PeftAdapter.of(prompt, PromptTuningConfig.builder().numVirtualTokens(5).build(), TestPaths.stories260k())
                .save(out, STORIES);

        JsonNode config = new ObjectMapper().readTree(out.resolve("adapter_config.json").toFile());
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

        PeftAdapter loaded = PeftAdapter.load(out, STORIES);
        assertEquals(prompt, loaded.prompt());
        assertEquals("RANDOM", loaded.promptTuningInit());
        try (Stream<Path> siblings = Files.list(dir)) {
            assertEquals(List.of(out), siblings.toList(), "no temporary directory is left behind");
        }
    }

    @Test
    void textInitRecordsTextAndTokenizer() throws IOException {
        PromptTuningConfig config = PromptTuningConfig.builder().numVirtualTokens(3).initText("Tell a story").build();
        Path out = dir.resolve("text");
        PeftAdapter.of(prompt(3, 64), config, TestPaths.stories260k()).save(out, STORIES);
        JsonNode json = new ObjectMapper().readTree(out.resolve("adapter_config.json").toFile());
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
        PeftAdapter.of(prompt(2, 64), config, null).save(out, STORIES);
        JsonNode json = new ObjectMapper().readTree(out.resolve("adapter_config.json").toFile());
        assertEquals("RANDOM", json.get("prompt_tuning_init").asText());
        assertTrue(json.get("base_model_name_or_path").isNull());
    }

    @Test
    void overwritesOnlyTheAdapterFilesInAnExistingDirectory() throws IOException {
        Path out = dir.resolve("existing");
        Files.createDirectories(out);
        Files.writeString(out.resolve("README.md"), "keep me");
        PeftAdapter.of(prompt(2, 64), null, null).save(out, STORIES);
        SoftPrompt second = prompt(4, 64);
        PeftAdapter.of(second, null, null).save(out, STORIES);
        assertEquals("keep me", Files.readString(out.resolve("README.md")));
        assertEquals(second, PeftAdapter.load(out, STORIES).prompt());
        try (Stream<Path> siblings = Files.list(dir)) {
            assertEquals(1, siblings.count(), "no temporary directory is left behind");
        }
    }

    @Test
    void refusesToSaveAPromptOfTheWrongWidthAndWritesNothing() {
        Path out = dir.resolve("never");
        assertThrows(AdapterException.class, () -> PeftAdapter.of(prompt(2, 32), null, null).save(out, STORIES));
        assertFalse(Files.exists(out));
    }

    /**
     * An adapter laid out as a recent PEFT's save_pretrained writes it, built by hand: keys that
     * ptune does not use and a BF16 tensor.
     */
    private Path handWrittenPeftAdapter(String peftType, int tokenDim, int rows, String dtype) throws IOException {
        Path adapter = dir.resolve("peft-" + peftType + "-" + tokenDim + "-" + dtype);
        Files.createDirectories(adapter);
        Files.writeString(adapter.resolve("adapter_config.json"), """
                {
                  "auto_mapping": null,
                  "base_model_name_or_path": "karpathy/stories260K",
                  "inference_mode": true,
                  "modules_to_save": null,
                  "num_attention_heads": 8,
                  "num_layers": 5,
                  "num_transformer_submodules": 1,
                  "num_virtual_tokens": 3,
                  "peft_type": "%s",
                  "peft_version": "0.17.1",
                  "prompt_tuning_init": "TEXT",
                  "prompt_tuning_init_text": "Write a story",
                  "revision": null,
                  "task_type": "CAUSAL_LM",
                  "token_dim": %d,
                  "tokenizer_kwargs": null,
                  "tokenizer_name_or_path": "karpathy/stories260K",
                  "some_future_field": 1
                }""".formatted(peftType, tokenDim));
        int cols = tokenDim;
        int elementBytes = dtype.equals("F32") ? 4 : 2;
        ByteBuffer data = ByteBuffer.allocate(rows * cols * elementBytes).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < rows * cols; i++) {
            float value = (i % 5) - 2 + 0.5f; // exactly representable in BF16 and F16
            switch (dtype) {
                case "F32" -> data.putFloat(value);
                case "BF16" -> data.putShort((short) (Float.floatToIntBits(value) >>> 16));
                default -> throw new IllegalArgumentException(dtype);
            }
        }
        String header = "{\"__metadata__\":{\"format\":\"pt\"},\"prompt_embeddings\":{\"dtype\":\"" + dtype
                + "\",\"shape\":[" + rows + "," + cols + "],\"data_offsets\":[0," + data.capacity() + "]}}";
        Files.write(adapter.resolve("adapter_model.safetensors"), SafetensorsTest.file(header, data.array()));
        return adapter;
    }

    @Test
    void loadsAnAdapterWrittenByPeft() throws IOException {
        for (String dtype : List.of("F32", "BF16")) {
            PeftAdapter adapter = PeftAdapter.load(handWrittenPeftAdapter("PROMPT_TUNING", 64, 3, dtype), STORIES);
            assertEquals(3, adapter.prompt().numVirtualTokens());
            assertEquals(64, adapter.prompt().dim());
            float[] values = adapter.prompt().values();
            for (int i = 0; i < values.length; i++) {
                assertEquals((i % 5) - 2 + 0.5f, values[i], dtype + " value " + i);
            }
            assertEquals("TEXT", adapter.promptTuningInit());
            assertEquals("Write a story", adapter.promptTuningInitText());
            assertEquals("karpathy/stories260K", adapter.baseModelNameOrPath());
        }
    }

    @Test
    void rejectsAdapterForAnotherModelWidth() throws IOException {
        Path adapter = handWrittenPeftAdapter("PROMPT_TUNING", 768, 3, "F32");
        AdapterException e = assertThrows(AdapterException.class, () -> PeftAdapter.load(adapter, STORIES));
        String message = e.getMessage();
        assertTrue(message.contains("adapter_config.json"), message);
        assertTrue(message.contains("token_dim"), message);
        assertTrue(message.contains("768") && message.contains("64"), message);
        assertTrue(message.contains("another model"), message);
    }

    @Test
    void pointsOtherPromptMethodsToPromptAdapter() throws IOException {
        for (String type : List.of("P_TUNING", "PREFIX_TUNING")) {
            Path adapter = handWrittenPeftAdapter(type, 64, 3, "F32");
            AdapterException e = assertThrows(AdapterException.class, () -> PeftAdapter.load(adapter, STORIES));
            assertTrue(e.getMessage().contains(type) && e.getMessage().contains("PromptAdapter.load"), e.getMessage());
        }
        Path lora = handWrittenPeftAdapter("LORA", 64, 3, "F32");
        assertTrue(assertThrows(AdapterException.class, () -> PeftAdapter.load(lora, STORIES))
                .getMessage().contains("LORA"));
    }

    @Test
    void rejectsTensorShapeThatDisagreesWithTheConfig() throws IOException {
        Path adapter = handWrittenPeftAdapter("PROMPT_TUNING", 64, 4, "F32");
        AdapterException e = assertThrows(AdapterException.class, () -> PeftAdapter.load(adapter, STORIES));
        assertTrue(e.getMessage().contains("[4, 64]") && e.getMessage().contains("num_virtual_tokens 3"),
                e.getMessage());
    }

    @Test
    void reportsMissingPieces() throws IOException {
        AdapterException noDir = assertThrows(AdapterException.class,
                () -> PeftAdapter.load(dir.resolve("absent"), STORIES));
        assertTrue(noDir.getMessage().contains("does not exist"), noDir.getMessage());

        Path empty = Files.createDirectories(dir.resolve("empty"));
        assertTrue(assertThrows(AdapterException.class, () -> PeftAdapter.load(empty, STORIES))
                .getMessage().contains("adapter_config.json"));

        Path noWeights = handWrittenPeftAdapter("PROMPT_TUNING", 64, 3, "F32");
        Files.delete(noWeights.resolve("adapter_model.safetensors"));
        Files.writeString(noWeights.resolve("adapter_model.bin"), "pickle");
        AdapterException e = assertThrows(AdapterException.class, () -> PeftAdapter.load(noWeights, STORIES));
        assertTrue(e.getMessage().contains("adapter_model.safetensors") && e.getMessage().contains("safe_serialization"),
                e.getMessage());

        Path corrupt = handWrittenPeftAdapter("PROMPT_TUNING", 64, 3, "BF16");
        Files.write(corrupt.resolve("adapter_model.safetensors"), new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9});
        assertThrows(AdapterException.class, () -> PeftAdapter.load(corrupt, STORIES));

        Path noTokenDim = handWrittenPeftAdapter("PROMPT_TUNING", 64, 3, "F32");
        Path config = noTokenDim.resolve("adapter_config.json");
        Files.writeString(config, Files.readString(config).replace("\"token_dim\": 64,", ""));
        AdapterException missingField = assertThrows(AdapterException.class, () -> PeftAdapter.load(noTokenDim, STORIES));
        assertTrue(missingField.getMessage().contains("'token_dim'"), missingField.getMessage());
    }
}
