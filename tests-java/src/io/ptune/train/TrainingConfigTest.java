package io.ptune.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.ptune.InvalidConfigException;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;

class TrainingConfigTest {
    @Test
    void defaults() {
        TrainingConfig config = TrainingConfig.builder().build();
        assertEquals(1e-2, config.learningRate());
        assertEquals(1, config.epochs());
        assertEquals(0, config.maxSteps());
        assertEquals(8, config.batchSize());
        assertEquals(1, config.gradAccum());
        assertEquals(256, config.maxLength());
        assertEquals(42, config.seed());
        assertEquals(0, config.warmupSteps());
        assertEquals(LrSchedule.LINEAR, config.schedule());
        assertEquals(0.0, config.weightDecay());
        assertEquals(1.0, config.maxGradNorm());
        assertEquals(10, config.logEvery());
    }

    private static void rejects(String field, UnaryOperator<TrainingConfig.Builder> change) {
        InvalidConfigException e = assertThrows(InvalidConfigException.class,
                () -> change.apply(TrainingConfig.builder()).build());
        assertEquals(field, e.field(), e.getMessage());
    }

    @Test
    void rejectsOutOfRangeValuesNamingTheField() {
        rejects("learningRate", b -> b.learningRate(0));
        rejects("learningRate", b -> b.learningRate(Double.NaN));
        rejects("epochs", b -> b.epochs(0));
        rejects("maxSteps", b -> b.maxSteps(0));
        rejects("maxSteps", b -> b.epochs(2).maxSteps(10));
        rejects("batchSize", b -> b.batchSize(0));
        rejects("gradAccum", b -> b.gradAccum(-1));
        rejects("maxLength", b -> b.maxLength(1));
        rejects("warmupSteps", b -> b.warmupSteps(-1));
        rejects("weightDecay", b -> b.weightDecay(-0.1));
        rejects("maxGradNorm", b -> b.maxGradNorm(0));
        rejects("beta1", b -> b.beta1(1));
        rejects("beta2", b -> b.beta2(-0.5));
        rejects("epsilon", b -> b.epsilon(0));
        rejects("logEvery", b -> b.logEvery(0));
    }

    @Test
    void totalStepsFollowEpochsOrMaxSteps() {
        TrainingConfig twoEpochs = TrainingConfig.builder().epochs(2).batchSize(4).gradAccum(2).build();
        // 10 examples -> 3 micro-batches per epoch -> 6 -> 3 optimizer steps.
        assertEquals(3, Trainer.totalSteps(10, twoEpochs));
        assertEquals(17, Trainer.totalSteps(10, TrainingConfig.builder().maxSteps(17).build()));
        InvalidConfigException e = assertThrows(InvalidConfigException.class,
                () -> Trainer.totalSteps(3, TrainingConfig.builder().batchSize(4).gradAccum(2).build()));
        assertEquals("gradAccum", e.field());
    }
}
