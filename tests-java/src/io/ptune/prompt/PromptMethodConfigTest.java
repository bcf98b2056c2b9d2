package io.ptune.prompt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.ptune.InvalidConfigException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/** The method configs: PEFT's defaults, validation naming the field, length 0 rejected everywhere. */
class PromptMethodConfigTest {
    @TempDir
    Path dir;

    private static void assertField(String field, Executable build) {
        InvalidConfigException e = assertThrows(InvalidConfigException.class, build);
        assertEquals(field, e.field(), e.getMessage());
        assertTrue(e.getMessage().startsWith(field + ": "), e.getMessage());
    }

    @Test
    void pTuningHasPeftsDefaults() {
        PTuningConfig config = PTuningConfig.builder().numVirtualTokens(10).build();
        assertEquals(PromptMethod.P_TUNING, config.method());
        assertEquals(PromptEncoderType.MLP, config.encoderType());
        assertNull(config.encoderHiddenSize(), "unset = token_dim, as PEFT sets it");
        assertEquals(64, config.resolvedEncoderHiddenSize(64));
        assertEquals(2, config.encoderNumLayers());
        assertEquals(0.0, config.encoderDropout());
        assertEquals(PromptInit.RANDOM, config.initialization().init());
        assertEquals(16, PTuningConfig.builder().numVirtualTokens(1).encoderHiddenSize(16).build()
                .resolvedEncoderHiddenSize(64));
    }

    @Test
    void prefixTuningHasPeftsDefaults() {
        PrefixTuningConfig config = PrefixTuningConfig.builder().numVirtualTokens(10).build();
        assertEquals(PromptMethod.PREFIX_TUNING, config.method());
        assertEquals(false, config.prefixProjection());
        assertEquals(32, config.resolvedEncoderHiddenSize(32), "unset = token_dim (kv width on GQA models)");
    }

    @Test
    void dynamicDefaultsToTheHiddenSize() {
        DynamicPromptConfig config = DynamicPromptConfig.builder().numVirtualTokens(4).build();
        assertEquals(64, config.resolvedGeneratorHiddenSize(64));
        assertEquals(8, DynamicPromptConfig.builder().numVirtualTokens(4).generatorHiddenSize(8).build()
                .resolvedGeneratorHiddenSize(64));
    }

    @Test
    void lengthZeroIsRejectedByEveryMethod() {
        for (int n : new int[] {0, -3}) {
            assertField("numVirtualTokens", () -> PromptTuningConfig.builder().numVirtualTokens(n).build());
            assertField("numVirtualTokens", () -> PTuningConfig.builder().numVirtualTokens(n).build());
            assertField("numVirtualTokens", () -> PrefixTuningConfig.builder().numVirtualTokens(n).build());
            assertField("numVirtualTokens", () -> DynamicPromptConfig.builder().numVirtualTokens(n).build());
            assertField("numVirtualTokens", () -> PromptBlock.of("a", n, PromptInitSpec.random()));
        }
        assertField("numVirtualTokens", () -> PTuningConfig.builder().build());
        assertField("numVirtualTokens", () -> PrefixTuningConfig.builder().build());
        assertField("numVirtualTokens", () -> DynamicPromptConfig.builder().build());
        assertField("blocks", () -> CompositePromptConfig.builder().build());
    }

    @Test
    void rejectsOutOfRangeEncoderSettings() {
        assertField("encoderHiddenSize", () -> PTuningConfig.builder().numVirtualTokens(2).encoderHiddenSize(0).build());
        assertField("encoderNumLayers", () -> PTuningConfig.builder().numVirtualTokens(2).encoderNumLayers(0).build());
        assertField("encoderDropout", () -> PTuningConfig.builder().numVirtualTokens(2).encoderDropout(1.0).build());
        assertField("encoderDropout", () -> PTuningConfig.builder().numVirtualTokens(2).encoderDropout(-0.1).build());
        assertField("encoderHiddenSize",
                () -> PrefixTuningConfig.builder().numVirtualTokens(2).encoderHiddenSize(-1).build());
        assertField("generatorHiddenSize",
                () -> DynamicPromptConfig.builder().numVirtualTokens(2).generatorHiddenSize(0).build());
    }

    @Test
    void initSpecsNeedTheirValue() {
        assertField("initText", () -> new PromptInitSpec(PromptInit.TEXT, null, List.of(), null));
        assertField("labelWords", () -> new PromptInitSpec(PromptInit.LABELS, null, List.of(), null));
        assertField("initAdapter", () -> new PromptInitSpec(PromptInit.FROM_ADAPTER, null, List.of(), null));
        assertField("initAdapter", () -> new PromptInitSpec(PromptInit.RANDOM, null, List.of(), Path.of("x")));
        assertField("initAdapter", () -> PromptTuningConfig.builder().numVirtualTokens(2)
                .init(PromptInit.FROM_ADAPTER).build());
        assertEquals(Path.of("a/b"), PromptTuningConfig.builder().numVirtualTokens(2).initFromAdapter(Path.of("a/b"))
                .build().initAdapter());
    }

    @Test
    void initSpecsParseTheCommandLineForms() {
        assertEquals(PromptInit.RANDOM, PromptInitSpec.parse("random", null).init());
        assertEquals(PromptInit.SAMPLE_VOCAB, PromptInitSpec.parse("vocab", null).init());
        assertEquals("Tell a story", PromptInitSpec.parse("text:\"Tell a story\"", null).initText());
        assertEquals(List.of("good", "bad"), PromptInitSpec.parse("labels:good, bad", null).labelWords());
        assertEquals(Path.of("/base/dir/adapter"), PromptInitSpec.parse("from-adapter:adapter", Path.of("/base/dir"))
                .adapter());
        assertEquals(Path.of("/abs"), PromptInitSpec.parse("from-adapter:/abs", Path.of("/base")).adapter());
        for (String spec : List.of("random", "vocab", "text:Once upon", "labels:a,b", "from-adapter:/x/y")) {
            assertEquals(spec, PromptInitSpec.parse(spec, null).toSpecString());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PromptInitSpec.parse("zeros", null));
        assertTrue(e.getMessage().contains("from-adapter:DIR"), e.getMessage());
    }

    @Test
    void compositeBlocksAreValidated() {
        PromptBlock base = PromptBlock.of("base", 4, PromptInitSpec.random());
        CompositePromptConfig config = CompositePromptConfig.builder().addBlock(base)
                .addBlock(PromptBlock.of("task", 2, PromptInitSpec.text("Answer:")).withLearningRate(1e-3))
                .build();
        assertEquals(6, config.numVirtualTokens());
        assertEquals(4, config.blockOffset(1));
        assertField("blocks", () -> CompositePromptConfig.builder().addBlock(base).addBlock(base).build());
        assertField("blocks", () -> CompositePromptConfig.builder().addBlock(base.withFrozen(true)).build());
        assertField("name", () -> PromptBlock.of("bad name", 2, PromptInitSpec.random()));
        assertField("learningRate", () -> base.withLearningRate(0.0));
    }

    @Test
    void blocksFileRoundTrips() throws Exception {
        Path file = dir.resolve("blocks.json");
        Files.writeString(file, """
                [{"name": "base", "num_virtual_tokens": 4, "init": "text:Once upon a time"},
                 {"name": "domain", "num_virtual_tokens": 2, "init": "from-adapter:prev", "frozen": true},
                 {"name": "task", "num_virtual_tokens": 1, "learning_rate": 0.001}]
                """);
        List<PromptBlock> blocks = CompositePromptConfig.readBlocksFile(file);
        assertEquals(3, blocks.size());
        assertEquals("Once upon a time", blocks.get(0).initialization().initText());
        assertEquals(dir.toAbsolutePath().resolve("prev"), blocks.get(1).initialization().adapter(),
                "relative adapter directories are resolved against the blocks file");
        assertTrue(blocks.get(1).frozen());
        assertEquals(1e-3, blocks.get(2).learningRate());
        assertEquals(PromptInit.RANDOM, blocks.get(2).initialization().init());
        for (PromptBlock block : blocks) {
            JsonNode json = block.toJson();
            assertEquals(block, PromptBlock.fromJson(json, "test", null));
        }

        Files.writeString(file, "[{\"name\": \"a\", \"num_virtual_tokens\": 0}]");
        InvalidConfigException zero = assertThrows(InvalidConfigException.class,
                () -> CompositePromptConfig.readBlocksFile(file));
        assertEquals("blocks", zero.field());
        assertTrue(zero.getMessage().contains("block 0") && zero.getMessage().contains("> 0"), zero.getMessage());
        Files.writeString(file, "[{\"name\": \"a\", \"num_virtual_tokens\": 2, \"lr\": 1}]");
        assertTrue(assertThrows(InvalidConfigException.class, () -> CompositePromptConfig.readBlocksFile(file))
                .getMessage().contains("unknown key 'lr'"));
        Files.writeString(file, "{\"name\": \"a\"}");
        assertTrue(assertThrows(InvalidConfigException.class, () -> CompositePromptConfig.readBlocksFile(file))
                .getMessage().contains("list of blocks"));
        assertTrue(assertThrows(InvalidConfigException.class,
                () -> CompositePromptConfig.readBlocksFile(dir.resolve("absent.json"))).getMessage()
                .contains("does not exist"));
    }

    @Test
    void methodNamesParse() {
        for (PromptMethod method : PromptMethod.values()) {
            assertEquals(method, PromptMethod.parse(method.cliName()));
            assertEquals(method, PromptMethod.parse(method.name()));
        }
        assertTrue(assertThrows(IllegalArgumentException.class, () -> PromptMethod.parse("lora")).getMessage()
                .contains("prefix-tuning"));
    }
}
