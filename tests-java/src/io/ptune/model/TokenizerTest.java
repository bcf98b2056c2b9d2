package io.ptune.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.ModelFormatException;
import io.ptune.TestPaths;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokenizerTest {
    private static final String LILY = "Once upon a time, there was a little girl named Lily.";
    /** From shared/models/README.md, checked there against an independent llama2.c-style encoder. */
    private static final long[] LILY_IDS = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426};

    private static Tokenizer tokenizer;

    @TempDir
    Path dir;

    @BeforeAll
    static void load() {
        tokenizer = Tokenizer.load(TestPaths.stories260k());
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    @Test
    void encodesLikeTheReferenceWithBos() {
        assertArrayEquals(LILY_IDS, tokenizer.encode(LILY, true));
        assertTrue(tokenizer.addsBos());
        assertFalse(tokenizer.addsEos());
    }

    @Test
    void encodesWithoutSpecialTokens() {
        long[] plain = tokenizer.encode(LILY, false);
        assertEquals(LILY_IDS.length - 1, plain.length);
        assertEquals(403, plain[0]);
    }

    @Test
    void specialTokenIds() {
        assertEquals(1, tokenizer.bosTokenId().getAsLong());
        assertEquals(2, tokenizer.eosTokenId().getAsLong());
        assertTrue(tokenizer.padTokenId().isEmpty());
        assertEquals(512, tokenizer.vocabSize());
    }

    @Test
    void decodeRoundTrips() {
        assertEquals(LILY, tokenizer.decode(LILY_IDS, true));
        assertTrue(tokenizer.decode(LILY_IDS, false).startsWith("<s>"));
        String accents = "Zoë ate crème brûlée, 42 times!";
        assertEquals(accents, tokenizer.decode(tokenizer.encode(accents, true), true));
        assertEquals("", tokenizer.decode(new long[0], true));
    }

    @Test
    void neverTruncatesLongText() {
        String longText = "The cat sat on the mat. ".repeat(200);
        assertTrue(tokenizer.encode(longText, true).length > 1000);
    }

    private Path modelDirWithConfig(String tokenizerConfig) throws IOException {
        Files.copy(TestPaths.stories260k().resolve("tokenizer.json"), dir.resolve("tokenizer.json"));
        Files.writeString(dir.resolve("tokenizer_config.json"), tokenizerConfig);
        return dir;
    }

    @Test
    void tokenizerConfigCanTurnBosOff() throws IOException {
        Path model = modelDirWithConfig("""
                {"add_bos_token": false, "bos_token": "<s>", "eos_token": "</s>"}""");
        try (Tokenizer noBos = Tokenizer.load(model)) {
            assertFalse(noBos.addsBos());
            assertEquals(403, noBos.encode(LILY, true)[0]);
            assertEquals(LILY_IDS.length - 1, noBos.encode(LILY, true).length);
        }
    }

    @Test
    void tokenizerConfigCanAddEos() throws IOException {
        Path model = modelDirWithConfig("""
                {"add_bos_token": true, "add_eos_token": true,
                 "bos_token": {"content": "<s>", "special": true}, "eos_token": "</s>"}""");
        try (Tokenizer withEos = Tokenizer.load(model)) {
            long[] ids = withEos.encode(LILY, true);
            assertEquals(1, ids[0]);
            assertEquals(2, ids[ids.length - 1]);
            assertEquals(LILY_IDS.length + 1, ids.length);
        }
    }

    @Test
    void withoutTokenizerConfigThePostProcessorDecides() throws IOException {
        Files.copy(TestPaths.stories260k().resolve("tokenizer.json"), dir.resolve("tokenizer.json"));
        try (Tokenizer bare = Tokenizer.load(dir)) {
            assertArrayEquals(LILY_IDS, bare.encode(LILY, true));
            assertTrue(bare.eosTokenId().isEmpty(), "no tokenizer_config.json: no eos token is known");
        }
    }

    @Test
    void unknownSpecialTokenIsReported() throws IOException {
        Path model = modelDirWithConfig("{\"eos_token\": \"<|end|>\"}");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Tokenizer.load(model));
        assertTrue(e.getMessage().contains("<|end|>"), e.getMessage());
    }

    @Test
    void missingTokenizerJsonIsReported() {
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("tokenizer.json"), e.getMessage());
    }

    @Test
    void corruptTokenizerJsonIsReported() throws IOException {
        Files.writeString(dir.resolve("tokenizer.json"), "{\"version\": \"1.0\", \"model\": 5}");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("tokenizer.json"), e.getMessage());
    }
}
