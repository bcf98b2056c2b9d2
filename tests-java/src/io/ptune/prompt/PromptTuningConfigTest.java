package io.ptune.prompt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.InvalidConfigException;
import java.util.List;
import org.junit.jupiter.api.Test;

class PromptTuningConfigTest {
    @Test
    void defaults() {
        PromptTuningConfig config = PromptTuningConfig.builder().numVirtualTokens(20).build();
        assertEquals(20, config.numVirtualTokens());
        assertEquals(PromptInit.RANDOM, config.init());
        assertEquals(42, config.seed());
        assertEquals(List.of(), config.labelWords());
    }

    @Test
    void rejectsNonPositiveOrMissingVirtualTokens() {
        for (int n : new int[] {0, -5}) {
            InvalidConfigException e = assertThrows(InvalidConfigException.class,
                    () -> PromptTuningConfig.builder().numVirtualTokens(n).build());
            assertEquals("numVirtualTokens", e.field());
            assertTrue(e.getMessage().contains("must be > 0"), e.getMessage());
        }
        assertEquals("numVirtualTokens", assertThrows(InvalidConfigException.class,
                () -> PromptTuningConfig.builder().build()).field());
    }

    @Test
    void textInitNeedsText() {
        assertEquals("initText", assertThrows(InvalidConfigException.class,
                () -> PromptTuningConfig.builder().numVirtualTokens(4).init(PromptInit.TEXT).build()).field());
        assertEquals("initText", assertThrows(InvalidConfigException.class,
                () -> PromptTuningConfig.builder().numVirtualTokens(4).initText("  ").build()).field());
        assertEquals("initText", assertThrows(InvalidConfigException.class,
                () -> PromptTuningConfig.builder().numVirtualTokens(4).initText("x").init(PromptInit.RANDOM).build())
                .field());
    }

    @Test
    void labelsInitNeedsWords() {
        assertEquals("labelWords", assertThrows(InvalidConfigException.class,
                () -> PromptTuningConfig.builder().numVirtualTokens(4).init(PromptInit.LABELS).build()).field());
        assertEquals("labelWords", assertThrows(InvalidConfigException.class,
                () -> PromptTuningConfig.builder().numVirtualTokens(4).labelWords(List.of("good", " ")).build())
                .field());
        PromptTuningConfig ok = PromptTuningConfig.builder().numVirtualTokens(4).labelWords(List.of("good", "bad")).build();
        assertEquals(PromptInit.LABELS, ok.init());
    }
}
