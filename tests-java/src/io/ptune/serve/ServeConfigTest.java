package io.ptune.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ptune.InvalidConfigException;
import java.util.Map;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;

/** ServeConfig's defaults (those of `ptune serve`) and its validation naming the field. */
class ServeConfigTest {
    @Test
    void defaultsAreThoseOfPtuneServe() {
        ServeConfig c = ServeConfig.builder().build();
        assertEquals(new ServeConfig(8080, 16, 10, 256, 30_000, 4), c);
    }

    @Test
    void outOfRangeValuesNameTheirField() {
        Map<String, UnaryOperator<ServeConfig.Builder>> bad = Map.of(
                "port", b -> b.port(65536),
                "maxBatch", b -> b.maxBatch(0),
                "maxWaitMs", b -> b.maxWaitMs(-1),
                "queueCapacity", b -> b.queueCapacity(0),
                "timeoutMs", b -> b.timeoutMs(0),
                "handlerThreads", b -> b.handlerThreads(0));
        bad.forEach((field, change) -> {
            InvalidConfigException e = assertThrows(InvalidConfigException.class,
                    () -> change.apply(ServeConfig.builder()).build());
            assertEquals(field, e.field());
            assertTrue(e.getMessage().startsWith(field + ": must be"), e.getMessage());
        });
    }
}
