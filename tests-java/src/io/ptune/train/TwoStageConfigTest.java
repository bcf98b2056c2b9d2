package io.ptune.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.ptune.InvalidConfigException;
import org.junit.jupiter.api.Test;

class TwoStageConfigTest {
    @Test
    void defaults() {
        TwoStageConfig config = TwoStageConfig.builder().layers(2).build();
        assertEquals(2, config.layers());
        assertEquals(1e-5, config.learningRate());
        assertEquals(0, config.steps());
        assertEquals(1, config.epochs());
        assertEquals(3e-3, TwoStageConfig.DEFAULT_PROMPT_LEARNING_RATE);
        assertNull(TrainingConfig.builder().build().twoStage());
        assertEquals(config, TrainingConfig.builder().twoStage(config).build().twoStage());
    }

    @Test
    void rejectsBadValuesNamingTheField() {
        assertEquals("stage2Layers", assertThrows(InvalidConfigException.class,
                () -> TwoStageConfig.builder().build()).field());
        assertEquals("stage2Layers", assertThrows(InvalidConfigException.class,
                () -> TwoStageConfig.builder().layers(0).build()).field());
        assertEquals("stage2LearningRate", assertThrows(InvalidConfigException.class,
                () -> TwoStageConfig.builder().layers(1).learningRate(0).build()).field());
        assertEquals("stage2Steps", assertThrows(InvalidConfigException.class,
                () -> TwoStageConfig.builder().layers(1).steps(0).build()).field());
        assertEquals("stage2Steps", assertThrows(InvalidConfigException.class,
                () -> TwoStageConfig.builder().layers(1).steps(3).epochs(2).build()).field());
        assertEquals("stage2Epochs", assertThrows(InvalidConfigException.class,
                () -> TwoStageConfig.builder().layers(1).epochs(0).build()).field());
    }
}
