package io.ptune.inference;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.InvalidConfigException;
import org.junit.jupiter.api.Test;

class GenerationConfigTest {
    @Test
    void defaults() {
        GenerationConfig config = GenerationConfig.defaults();
        assertEquals(64, config.maxNewTokens());
        assertTrue(config.greedy());
        assertEquals(1.0, config.temperature());
        assertEquals(0, config.topK());
        assertEquals(1.0, config.topP());
        assertEquals(0, config.seed());
    }

    @Test
    void validates() {
        assertEquals("temperature", assertThrows(InvalidConfigException.class,
                () -> GenerationConfig.builder().temperature(0).build()).field());
        assertEquals("topP", assertThrows(InvalidConfigException.class,
                () -> GenerationConfig.builder().topP(0).build()).field());
        assertEquals("topP", assertThrows(InvalidConfigException.class,
                () -> GenerationConfig.builder().topP(1.01).build()).field());
        assertEquals("topK", assertThrows(InvalidConfigException.class,
                () -> GenerationConfig.builder().topK(-1).build()).field());
        assertEquals("maxNewTokens", assertThrows(InvalidConfigException.class,
                () -> GenerationConfig.builder().maxNewTokens(0).build()).field());
        GenerationConfig.builder().greedy(false).temperature(0.7).topK(40).topP(0.9).seed(3).build();
    }
}
